package modelconfig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lectern/lectern/internal/llm"
)

// blockedPrefixes are the non-public ranges netip's predicates leave out.
var blockedPrefixes = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// blockedReason says why a is not a public unicast address, or "".
func blockedReason(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	// Addresses that embed an IPv4 address are as good as that address.
	if a.Is6() && (nat64.Contains(a) || sixToFour.Contains(a)) {
		b := a.As16()
		var v4 [4]byte
		if nat64.Contains(a) {
			copy(v4[:], b[12:])
		} else {
			copy(v4[:], b[2:6])
		}
		if why := blockedReason(netip.AddrFrom4(v4)); why != "" {
			return why + " (embedded in IPv6)"
		}
		return ""
	}
	for _, bp := range blockedPrefixes {
		if bp.p.Contains(a) {
			return bp.why
		}
	}
	return ""
}

// blockedError is a refused destination.
type blockedError struct {
	host string
	addr netip.Addr
	why  string
}

func (e *blockedError) Error() string {
	if e.host != "" && e.host != e.addr.String() {
		return fmt.Sprintf("%s resolves to %s, a %s address: only public addresses may be reached (set %s=1 to allow private networks)", e.host, e.addr, e.why, EnvAllowPrivate)
	}
	return fmt.Sprintf("%s is a %s address: only public addresses may be reached (set %s=1 to allow private networks)", e.addr, e.why, EnvAllowPrivate)
}

// guard dials only public addresses (unless allowPrivate).
type guard struct {
	allowPrivate bool
	lookup       func(ctx context.Context, host string) ([]netip.Addr, error)
}

func newGuard(allowPrivate bool, lookup func(ctx context.Context, host string) ([]netip.Addr, error)) *guard {
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return &guard{allowPrivate: allowPrivate, lookup: lookup}
}

// resolve returns the addresses of host and refuses them all if one is
// not public (a name that answers with an internal address is not trusted
// for its other answers either).
func (g *guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{a.WithZone("")}
	} else {
		addrs, err = g.lookup(ctx, host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("%s: no address", host)
		}
	}
	if !g.allowPrivate {
		for _, a := range addrs {
			if why := blockedReason(a); why != "" {
				return nil, &blockedError{host: host, addr: a.Unmap(), why: why}
			}
		}
	}
	return addrs, nil
}

// dialContext resolves and checks the host itself, then dials the checked
// addresses (never the name again, so the answer cannot change in
// between), and control checks each socket's address once more.
func (g *guard) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", portText)
	}
	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: g.control}
	var last error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

// control refuses a socket about to connect to a non-public address: the
// last word, whatever resolved the name.
func (g *guard) control(network, address string, _ syscall.RawConn) error {
	if g.allowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refusing to connect to %q: not an IP address", address)
	}
	if why := blockedReason(ap.Addr()); why != "" {
		return &blockedError{addr: ap.Addr().Unmap(), why: why}
	}
	return nil
}

// transport reaches private endpoints: the guarded dialer, and no proxy
// (a proxy would dial for us, past the guard).
func (g *guard) transport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           g.dialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// literalBlocked refuses, without DNS, a base URL whose host is an IP
// literal that is not public, or localhost.
func (g *guard) literalBlocked(u *url.URL) error {
	if g.allowPrivate {
		return nil
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || host == "localhost.localdomain" {
		return &blockedError{host: host, addr: netip.AddrFrom4([4]byte{127, 0, 0, 1}), why: "loopback"}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if why := blockedReason(a); why != "" {
			return &blockedError{addr: a.Unmap().WithZone(""), why: why}
		}
	}
	return nil
}

// splitTransport sends a teacher's chain: requests to the tenant's own
// providers go as the tenant's gateway sends them, everything else (the
// teacher's endpoint) through the guard.
type splitTransport struct {
	shared         map[string]bool // scheme://host of the tenant's providers
	plain, guarded http.RoundTripper
}

func (t *splitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.shared[strings.ToLower(r.URL.Scheme+"://"+r.URL.Host)] {
		return t.plain.RoundTrip(r)
	}
	return t.guarded.RoundTrip(r)
}

func sharedOrigins(ps []llm.Provider) map[string]bool {
	out := map[string]bool{}
	for _, p := range ps {
		if u, err := url.Parse(strings.TrimSpace(p.BaseURL)); err == nil && u.Host != "" {
			out[strings.ToLower(u.Scheme+"://"+u.Host)] = true
		}
	}
	return out
}

// asBlocked finds a refused destination in err's chain.
func asBlocked(err error) (*blockedError, bool) {
	var be *blockedError
	ok := errors.As(err, &be)
	return be, ok
}
