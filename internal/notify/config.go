package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/livrec/livrec/internal/catalog"
)

// ErrNotFound is returned for an unknown domain or callback id. It is the catalog's
// ErrNotFound, so errors.Is works with either.
var ErrNotFound = catalog.ErrNotFound

// Config is one domain's callback configuration, as in the cloud API's
// AddLiveRecordNotifyConfig / DescribeLiveRecordNotifyConfig.
type Config struct {
	// DomainName is the streaming domain (the stream key's domain). Stored and matched
	// in lower case.
	DomainName string `json:"domainName"`
	// NotifyURL receives the recording callbacks (HTTP POST, JSON). Required,
	// absolute http:// or https:// URL.
	NotifyURL string `json:"notifyUrl"`
	// OnDemandURL is asked whether to record when a rule says onDemand 1. Optional,
	// absolute http:// or https:// URL.
	OnDemandURL string `json:"onDemandUrl"`
	// NeedStatusNotify adds record_started / paused / resumed / error callbacks.
	NeedStatusNotify bool `json:"needStatusNotify"`
	// NotifyReqAuth signs callbacks with NotifyAuthKey (headers ALI-LIVE-TIMESTAMP and
	// ALI-LIVE-SIGNATURE). Without a key nothing is signed.
	NotifyReqAuth bool   `json:"notifyReqAuth"`
	NotifyAuthKey string `json:"notifyAuthKey"`
}

// Error codes of ValidationError, named after the cloud API's codes.
const (
	CodeMissingDomainName    = "MissingDomainName"
	CodeInvalidDomainName    = "InvalidDomainName.Malformed"
	CodeMissingNotifyURL     = "MissingNotifyUrl"
	CodeInvalidNotifyURL     = "InvalidNotifyUrl.Malformed"
	CodeInvalidOnDemandURL   = "InvalidOnDemandUrl.Malformed"
	CodeInvalidNotifyAuthKey = "InvalidNotifyAuthKey.Malformed"
)

// Limits of a Config.
const (
	maxURLLength     = 2048
	maxDomainLength  = 253
	maxAuthKeyLength = 256
)

// ValidationError is one problem with one field of a Config. Field is the JSON name
// ("notifyUrl"), Code the cloud API's error code ("InvalidNotifyUrl.Malformed").
type ValidationError struct {
	Field string `json:"field"`
	Code  string `json:"code"`
	Msg   string `json:"message"`
}

// Error returns "field: msg".
func (e *ValidationError) Error() string { return e.Field + ": " + e.Msg }

// ValidationErrors is every problem found by one Validate.
type ValidationErrors []*ValidationError

// Error joins the problems with newlines.
func (es ValidationErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap exposes the individual problems to errors.As.
func (es ValidationErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Validate checks the configuration. The error, when not nil, is a ValidationErrors
// whose entries name the field (errors.As with *ValidationError finds the first).
func (c *Config) Validate() error {
	var es ValidationErrors
	add := func(field, code, msg string) {
		es = append(es, &ValidationError{Field: field, Code: code, Msg: msg})
	}
	switch d := c.DomainName; {
	case d == "":
		add("domainName", CodeMissingDomainName, "required")
	case len(d) > maxDomainLength:
		add("domainName", CodeInvalidDomainName, fmt.Sprintf("longer than %d characters", maxDomainLength))
	case strings.ContainsAny(d, " \t\r\n/?#@\\") || strings.ContainsFunc(d, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		add("domainName", CodeInvalidDomainName, fmt.Sprintf("%q is not a domain name (no spaces, '/', '?', '#', '@')", d))
	}
	if c.NotifyURL == "" {
		add("notifyUrl", CodeMissingNotifyURL, "required: an absolute http:// or https:// URL")
	} else if msg := checkURL(c.NotifyURL); msg != "" {
		add("notifyUrl", CodeInvalidNotifyURL, msg)
	}
	if c.OnDemandURL != "" {
		if msg := checkURL(c.OnDemandURL); msg != "" {
			add("onDemandUrl", CodeInvalidOnDemandURL, msg)
		}
	}
	if len(c.NotifyAuthKey) > maxAuthKeyLength {
		add("notifyAuthKey", CodeInvalidNotifyAuthKey, fmt.Sprintf("longer than %d characters", maxAuthKeyLength))
	}
	if len(es) == 0 {
		return nil
	}
	return es
}

// checkURL returns what is wrong with a callback URL, "" when it is fine.
func checkURL(s string) string {
	if len(s) > maxURLLength {
		return fmt.Sprintf("longer than %d characters", maxURLLength)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= 0x20 || r == 0x7f }) {
		return fmt.Sprintf("%q contains spaces or control characters", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%q is not a URL: %v", s, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("%q must start with http:// or https://", s)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return fmt.Sprintf("%q has no host (want an absolute URL like http://host/path)", s)
	}
	if u.Fragment != "" {
		return fmt.Sprintf("%q must not have a #fragment", s)
	}
	return ""
}

// checkSafe applies the address policy to the URLs of a valid Config.
func (n *Notifier) checkSafe(c *Config) error {
	var es ValidationErrors
	if msg := n.policy.checkURL(c.NotifyURL); msg != "" {
		es = append(es, &ValidationError{Field: "notifyUrl", Code: CodeUnsafeNotifyURL, Msg: msg})
	}
	if c.OnDemandURL != "" {
		if msg := n.policy.checkURL(c.OnDemandURL); msg != "" {
			es = append(es, &ValidationError{Field: "onDemandUrl", Code: CodeUnsafeOnDemandURL, Msg: msg})
		}
	}
	if len(es) == 0 {
		return nil
	}
	return es
}

func normDomain(d string) string { return strings.ToLower(d) }

const configSchema = `
CREATE TABLE IF NOT EXISTS notify_configs (
	domain TEXT PRIMARY KEY,
	notify_url TEXT NOT NULL,
	on_demand_url TEXT NOT NULL DEFAULT '',
	need_status_notify INTEGER NOT NULL DEFAULT 0,
	notify_req_auth INTEGER NOT NULL DEFAULT 0,
	notify_auth_key TEXT NOT NULL DEFAULT '',
	updated_at INTEGER NOT NULL
);
`

// Put creates or replaces the configuration of c.DomainName after validating it.
// Callbacks already queued keep the URL and key they were queued with.
func (n *Notifier) Put(ctx context.Context, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := n.checkSafe(&c); err != nil {
		return err
	}
	c.DomainName = normDomain(c.DomainName)
	_, err := n.db.ExecContext(ctx, `INSERT INTO notify_configs(domain,notify_url,on_demand_url,need_status_notify,notify_req_auth,notify_auth_key,updated_at)
		VALUES(?,?,?,?,?,?,?)
		ON CONFLICT(domain) DO UPDATE SET notify_url=excluded.notify_url, on_demand_url=excluded.on_demand_url,
			need_status_notify=excluded.need_status_notify, notify_req_auth=excluded.notify_req_auth,
			notify_auth_key=excluded.notify_auth_key, updated_at=excluded.updated_at`,
		c.DomainName, c.NotifyURL, c.OnDemandURL, c.NeedStatusNotify, c.NotifyReqAuth, c.NotifyAuthKey, n.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("notify config %s: %w", c.DomainName, err)
	}
	n.cfgMu.Lock()
	n.configs[c.DomainName] = c
	n.cfgMu.Unlock()
	return nil
}

// Get returns the configuration of a domain, ErrNotFound if there is none.
func (n *Notifier) Get(ctx context.Context, domain string) (*Config, error) {
	cs, err := n.queryConfigs(ctx, `WHERE domain=?`, normDomain(domain))
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("notify config %s: %w", domain, ErrNotFound)
	}
	return &cs[0], nil
}

// Delete removes the configuration of a domain, ErrNotFound if there is none. Callbacks
// already queued are still delivered.
func (n *Notifier) Delete(ctx context.Context, domain string) error {
	d := normDomain(domain)
	res, err := n.db.ExecContext(ctx, `DELETE FROM notify_configs WHERE domain=?`, d)
	if err != nil {
		return fmt.Errorf("notify config %s: %w", domain, err)
	}
	n.cfgMu.Lock()
	delete(n.configs, d)
	n.cfgMu.Unlock()
	if k, _ := res.RowsAffected(); k == 0 {
		return fmt.Errorf("notify config %s: %w", domain, ErrNotFound)
	}
	return nil
}

// List returns every configuration, ordered by domain.
func (n *Notifier) List(ctx context.Context) ([]Config, error) {
	return n.queryConfigs(ctx, ``)
}

func (n *Notifier) queryConfigs(ctx context.Context, where string, args ...any) ([]Config, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT domain,notify_url,on_demand_url,need_status_notify,notify_req_auth,notify_auth_key
		FROM notify_configs `+where+` ORDER BY domain`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Config{}
	for rows.Next() {
		var c Config
		if err := rows.Scan(&c.DomainName, &c.NotifyURL, &c.OnDemandURL, &c.NeedStatusNotify, &c.NotifyReqAuth, &c.NotifyAuthKey); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// loadConfigs fills the in-memory copy that Notify reads (so Notify does not query the
// configuration for each event).
func (n *Notifier) loadConfigs(ctx context.Context) error {
	cs, err := n.queryConfigs(ctx, ``)
	if err != nil {
		return err
	}
	m := make(map[string]Config, len(cs))
	for _, c := range cs {
		m[c.DomainName] = c
	}
	n.cfgMu.Lock()
	n.configs = m
	n.cfgMu.Unlock()
	return nil
}

// config returns the in-memory configuration of a domain.
func (n *Notifier) config(domain string) (Config, bool) {
	n.cfgMu.RLock()
	defer n.cfgMu.RUnlock()
	c, ok := n.configs[normDomain(domain)]
	return c, ok
}
