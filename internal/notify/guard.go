package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Callback URLs are given by API clients, and livrec connects to them from inside the
// operator's network: without a check, a token holder could make livrec POST to (and
// report on) loopback services, the cloud metadata endpoint or the private network. So
// by default livrec refuses every address that is not a public unicast one, both when a
// URL is configured (address literals and localhost names: error code
// InvalidNotifyUrl.Unsafe / InvalidOnDemandUrl.Unsafe) and when it connects (every
// resolved address, so a name that resolves to a private address at delivery time, DNS
// rebinding included, is refused too). Options.AllowPrivateCallbacks or
// Options.CallbackAllowList lift the check.

// Error codes of a URL refused by the address policy.
const (
	CodeUnsafeNotifyURL   = "InvalidNotifyUrl.Unsafe"
	CodeUnsafeOnDemandURL = "InvalidOnDemandUrl.Unsafe"
)

// nonPublic are the ranges that netip's predicates (loopback, private, link-local,
// multicast, unspecified) do not cover but that are not public destinations either. The
// predicates cover 127/8, ::1, 10/8, 172.16/12, 192.168/16, fc00::/7 (AWS's
// fd00:ec2::254), 169.254/16 (the metadata address 169.254.169.254) and fe80::/10.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network": Linux routes 0.x.x.x to the host itself
	netip.MustParsePrefix("100.64.0.0/10"),  // shared address space (carrier NAT; Alibaba Cloud's metadata 100.100.100.200)
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and the broadcast address
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: any IPv4 address, private ones included
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("2001::/32"),      // Teredo: embeds an IPv4 address
	netip.MustParsePrefix("255.255.255.255/32"),
}

// addrKind says why an address is not public, "" when it is.
func addrKind(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLinkLocalUnicast():
		return "link-local (cloud metadata)"
	case a.IsPrivate():
		return "private"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return "reserved (" + p.String() + ")"
		}
	}
	return ""
}

// addressPolicy decides which callback destinations are allowed.
type addressPolicy struct {
	allowAll bool
	prefixes []netip.Prefix
	hosts    map[string]bool // lower case, no trailing dot
}

// newAddressPolicy builds the policy of Options.AllowPrivateCallbacks and
// Options.CallbackAllowList. An entry of the list is a CIDR ("10.0.0.0/8"), an IP address
// or a host name; the error names the entry's index.
func newAddressPolicy(allowAll bool, list []string) (*addressPolicy, error) {
	p := &addressPolicy{allowAll: allowAll, hosts: map[string]bool{}}
	for i, e := range list {
		pfx, err := ParseAllowEntry(e)
		if err != nil {
			return nil, fmt.Errorf("callbackAllowList[%d]: %w", i, err)
		}
		if pfx.IsValid() {
			p.prefixes = append(p.prefixes, pfx)
		} else {
			p.hosts[normHost(e)] = true
		}
	}
	return p, nil
}

// ParseAllowEntry checks one callbackAllowList entry: a CIDR or an IP address (returned
// as a prefix) or a host name (returned as the zero prefix).
func ParseAllowEntry(e string) (netip.Prefix, error) {
	e = strings.TrimSpace(e)
	if pfx, err := netip.ParsePrefix(e); err == nil {
		return pfx.Masked(), nil
	}
	if a, err := netip.ParseAddr(e); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	if e == "" || len(e) > maxDomainLength || strings.ContainsFunc(e, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
	}) {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (10.0.0.0/8), an IP address or a host name", e)
	}
	return netip.Prefix{}, nil
}

func normHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// allowedAddr reports whether a connection to a may be made, and if not why.
func (p *addressPolicy) allowedAddr(a netip.Addr) (bool, string) {
	if p.allowAll {
		return true, ""
	}
	kind := addrKind(a)
	if kind == "" {
		return true, ""
	}
	for _, pfx := range p.prefixes {
		if pfx.Contains(a.Unmap()) {
			return true, ""
		}
	}
	return false, kind
}

// checkURL returns why the URL's host is refused, "" if it is allowed (or can only be
// judged when connecting: a host name other than localhost). rawURL is well formed.
func (p *addressPolicy) checkURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || p.allowAll {
		return ""
	}
	host := u.Hostname()
	if p.hosts[normHost(host)] {
		return ""
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if ok, kind := p.allowedAddr(a); !ok {
			return fmt.Sprintf("%s is a %s address; callbacks go to public addresses unless allowPrivateCallbacks or callbackAllowList allows it", host, kind)
		}
		return ""
	}
	h := normHost(host)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return fmt.Sprintf("%s is a loopback name; callbacks go to public addresses unless allowPrivateCallbacks or callbackAllowList allows it", host)
	}
	// Resolvers read all-numeric names such as 127.1, 2130706433 or 0x7f.1 as IPv4
	// addresses: refuse them rather than guess what they mean.
	if strings.Trim(strings.ToLower(h), "0123456789.x") == "" || strings.HasPrefix(h, "0x") {
		return fmt.Sprintf("%s is a numeric host that is not a plain IP address: write it as a.b.c.d (callbacks go to public addresses unless allowPrivateCallbacks or callbackAllowList allows it)", host)
	}
	return ""
}

// errUnsafeAddress wraps the refusals of the dialer.
var errUnsafeAddress = errors.New("address not allowed for callbacks")

// dialContext returns a DialContext that refuses connections to addresses the policy
// does not allow. The check runs on the address actually connected to (the Control
// hook sees it after resolution), so what the name resolved to when the URL was
// configured does not matter. Host names of the allow list are dialled unchecked.
func (p *addressPolicy) dialContext() func(ctx context.Context, network, addr string) (net.Conn, error) {
	checked := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", errUnsafeAddress, address)
			}
			if ok, kind := p.allowedAddr(ap.Addr()); !ok {
				return fmt.Errorf("%w: %s is a %s address (allowPrivateCallbacks or callbackAllowList allows it)",
					errUnsafeAddress, ap.Addr(), kind)
			}
			return nil
		}}
	free := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, err := net.SplitHostPort(addr); err == nil && (p.allowAll || p.hosts[normHost(host)]) {
			return free.DialContext(ctx, network, addr)
		}
		return checked.DialContext(ctx, network, addr)
	}
}
