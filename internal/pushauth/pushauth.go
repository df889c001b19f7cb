// Package pushauth checks signed push URLs ("type A" URL signing of the cloud live
// service, reference §8) before an RTMP publish is accepted:
//
//	rtmp://host/app/stream?auth_key={timestamp}-{rand}-{uid}-{md5}
//	md5 = lowercase hex md5("/{app}/{stream}-{timestamp}-{rand}-{uid}-{key}")
//
// A domain may have a primary and a secondary key (both accepted during a rotation) and
// a validity period: a URL is accepted until timestamp + validity. Failed attempts are
// rate-limited per client address; the reason is logged, never the key.
package pushauth

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
)

// DomainKeys are the push-authentication settings of one domain.
type DomainKeys struct {
	DomainName   string `yaml:"domainName" json:"domainName"`
	PrimaryKey   string `yaml:"primaryKey" json:"-"`
	SecondaryKey string `yaml:"secondaryKey" json:"-"`
	// Validity (seconds) extends the URL's timestamp: accepted until timestamp+validity.
	Validity int `yaml:"validity" json:"validity"`
}

// Rate limiting of failed attempts per client address.
const (
	maxFailures   = 5
	failureWindow = time.Minute
	banTime       = time.Minute
)

// ErrDenied wraps every refusal.
var ErrDenied = errors.New("push authentication failed")

// Checker verifies auth_key arguments. The zero value of Now is time.Now.
type Checker struct {
	keys   map[string]DomainKeys
	Now    func() time.Time
	Logger *slog.Logger

	mu       sync.Mutex
	failures map[string][]time.Time
	banned   map[string]time.Time
}

// New returns a Checker for the domains listed; other domains need no signature.
func New(domains []DomainKeys, log *slog.Logger) (*Checker, error) {
	c := &Checker{keys: map[string]DomainKeys{}, Now: time.Now, Logger: log,
		failures: map[string][]time.Time{}, banned: map[string]time.Time{}}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	for i, d := range domains {
		switch {
		case d.DomainName == "":
			return nil, fmt.Errorf("publishAuth[%d].domainName: is required", i)
		case d.PrimaryKey == "" && d.SecondaryKey == "":
			return nil, fmt.Errorf("publishAuth[%d].primaryKey: a key is required", i)
		case d.Validity < 0:
			return nil, fmt.Errorf("publishAuth[%d].validity: %d: want 0 or more seconds", i, d.Validity)
		}
		name, err := rules.NormalizeDomain(d.DomainName)
		if err != nil {
			return nil, fmt.Errorf("publishAuth[%d].domainName: %v", i, err)
		}
		c.keys[name] = d
	}
	return c, nil
}

// Sign returns the auth_key for a push of /app/stream valid until expires (with
// validity 0), made with key. rand must not contain '-'.
func Sign(app, stream, key string, expires time.Time, rand, uid string) string {
	ts := strconv.FormatInt(expires.Unix(), 10)
	sum := md5.Sum([]byte("/" + app + "/" + stream + "-" + ts + "-" + rand + "-" + uid + "-" + key))
	return ts + "-" + rand + "-" + uid + "-" + hex.EncodeToString(sum[:])
}

// Check verifies a publish; nil means accepted.
func (c *Checker) Check(req *rtmp.PublishRequest) error {
	// The domain the recorder will see: a variant spelling ("A.test.", "a.test:1935")
	// must not skip the domain's keys.
	domain, err := rules.NormalizeDomain(req.Domain)
	if err != nil {
		return fmt.Errorf("%w: domain (vhost) %v", rtmp.ErrBadName, err)
	}
	d, ok := c.keys[domain]
	if !ok {
		return nil
	}
	addr := clientIP(req.RemoteAddr)
	now := c.Now()
	if err := c.banned_(addr, now); err != nil {
		return err
	}
	if err := verify(d, req.App, req.Stream, req.Args, now); err != nil {
		c.fail(addr, now)
		c.Logger.Warn("push refused", "domain", req.Domain, "app", req.App, "stream", req.Stream, "remote", addr, "reason", err)
		return fmt.Errorf("%w: %v", ErrDenied, err)
	}
	return nil
}

func verify(d DomainKeys, app, stream string, args url.Values, now time.Time) error {
	raw := args.Get("auth_key")
	if raw == "" {
		return errors.New("auth_key is missing")
	}
	parts := strings.Split(raw, "-")
	if len(parts) != 4 {
		return errors.New("auth_key is not timestamp-rand-uid-md5")
	}
	ts, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return errors.New("auth_key timestamp is not a number")
	}
	if now.Unix() > ts+int64(d.Validity) {
		return fmt.Errorf("auth_key expired at %s", time.Unix(ts+int64(d.Validity), 0).UTC().Format(time.RFC3339))
	}
	for _, key := range []string{d.PrimaryKey, d.SecondaryKey} {
		if key == "" {
			continue
		}
		sum := md5.Sum([]byte("/" + app + "/" + stream + "-" + parts[0] + "-" + parts[1] + "-" + parts[2] + "-" + key))
		if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(strings.ToLower(parts[3]))) == 1 {
			return nil
		}
	}
	return errors.New("auth_key signature does not match")
}

func clientIP(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

func (c *Checker) banned_(addr string, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.banned[addr]; ok {
		if now.Before(until) {
			return fmt.Errorf("%w: too many failed attempts from %s; retry after %s", ErrDenied, addr, until.UTC().Format(time.RFC3339))
		}
		delete(c.banned, addr)
	}
	return nil
}

func (c *Checker) fail(addr string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	recent := c.failures[addr][:0]
	for _, t := range c.failures[addr] {
		if now.Sub(t) < failureWindow {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	c.failures[addr] = recent
	if len(recent) >= maxFailures {
		c.banned[addr] = now.Add(banTime)
		delete(c.failures, addr)
		c.Logger.Warn("push authentication: client blocked after repeated failures", "remote", addr, "for", banTime)
	}
}

// Handler checks every publish before handing it to Next.
type Handler struct {
	Next    rtmp.Handler
	Checker *Checker
}

// Publish implements rtmp.Handler.
func (h Handler) Publish(req *rtmp.PublishRequest) (rtmp.Session, error) {
	if err := h.Checker.Check(req); err != nil {
		return nil, err
	}
	return h.Next.Publish(req)
}
