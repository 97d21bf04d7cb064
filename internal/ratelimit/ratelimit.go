// Package ratelimit limits the request rate of each client, replacing the
// predecessor's rate_limit.py (a sliding 60 s window of RATE_LIMIT_RPM
// requests per client address).
//
// A Limiter keeps one token bucket (golang.org/x/time/rate) per client
// key: the bucket holds Burst tokens, refills at RPM/60 tokens a second,
// and a request that finds it empty is refused with 429
// {"detail":"rate_limit_exceeded","retry_after":N} and Retry-After: N,
// N being the whole seconds (rounded up, at least 1) until a token is
// back. A refused request takes no token, as in the predecessor.
//
// The client key is the socket peer address, or an X-Forwarded-For entry
// when the peer is a trusted proxy (see Config and ClientKey). IPv6
// addresses are grouped by /64, the block a single subscriber is normally
// given, so that one client cannot get a fresh bucket per address.
//
// At most MaxBuckets keys are remembered; a new key beyond that evicts the
// least recently seen one (which then starts again with a full bucket).
//
// The caller decides which limit applies to a request: a server typically
// builds two Limiters, a general one and a tighter one for the login
// routes (ConfigFromEnv returns both), and chains their middlewares:
//
//	h = login.Middleware(ratelimit.Not(isLogin))(mux)
//	h = general.Middleware(ratelimit.IsHealth)(h)
//
// A Limiter is safe for concurrent use and has no package-level state.
package ratelimit

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/lectern/lectern/internal/httpjson"
)

// Defaults.
const (
	DefaultRPM        = 120  // RATE_LIMIT_RPM when unset
	DefaultLoginRPM   = 10   // RATE_LIMIT_LOGIN_RPM when unset
	DefaultMaxBuckets = 4096 // RATE_LIMIT_MAX_BUCKETS when unset
	DefaultIPv6Bits   = 64   // IPv6 keys are grouped by this prefix length

	// maxForwardedHops bounds the X-Forwarded-For entries examined.
	maxForwardedHops = 32
)

// Config configures a Limiter. The zero value is a disabled limiter.
type Config struct {
	// RPM is the sustained rate allowed to one client key, in requests
	// per minute. 0 (or less) disables the limiter.
	RPM int
	// Burst is the bucket size: how many requests a key that has been
	// idle may send at once. 0 means DefaultBurst(RPM).
	Burst int
	// TrustForwardedFor makes the limiter read X-Forwarded-For from
	// trusted peers (all peers when TrustedProxies is empty, as in the
	// predecessor).
	TrustForwardedFor bool
	// TrustedProxies are the proxies whose X-Forwarded-For is believed,
	// as addresses or CIDR blocks (see ParseProxies).
	TrustedProxies []netip.Prefix
	// MaxBuckets bounds the keys remembered. 0 means DefaultMaxBuckets.
	MaxBuckets int
	// IPv6Bits is the prefix length IPv6 keys are grouped by, 1..128.
	// 0 means DefaultIPv6Bits (/64).
	IPv6Bits int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultBurst is the bucket size used when Config.Burst is 0: ten
// seconds' worth of the sustained rate (RPM/6, rounded up), so a page
// that fires a handful of API calls at once is never slowed while a
// client sending steadily is held to RPM; but at least 5 (or RPM when
// that is smaller), so a small limit such as the login one (10/min) still
// lets a user retry a mistyped password a few times in a row.
// 120 RPM gives 20, 60 gives 10, 10 gives 5, 3 gives 3.
func DefaultBurst(rpm int) int {
	if rpm <= 0 {
		return 0
	}
	return max((rpm+5)/6, min(rpm, 5))
}

// Limiter enforces one Config. A nil *Limiter, like one built from a
// Config with RPM 0, allows everything.
type Limiter struct {
	enabled  bool
	limit    rate.Limit
	burst    int
	max      int
	v6bits   int
	trustXFF bool
	proxies  []netip.Prefix
	now      func() time.Time

	mu      sync.Mutex
	buckets map[bucketKey]*list.Element // values are *bucket
	lru     list.List                   // front = most recently seen
}

// bucketKey identifies a client: an address (IPv4, or an IPv6 prefix's
// masked address), or, for a peer address that does not parse (a Unix
// socket, a test's "pipe"), the raw string. It is comparable and built
// without allocating.
type bucketKey struct {
	addr netip.Addr
	raw  string
}

type bucket struct {
	key bucketKey
	lim *rate.Limiter
}

// New builds a Limiter from cfg.
func New(cfg Config) *Limiter {
	l := &Limiter{
		enabled:  cfg.RPM > 0,
		limit:    rate.Limit(float64(cfg.RPM) / 60),
		burst:    cfg.Burst,
		max:      cfg.MaxBuckets,
		v6bits:   cfg.IPv6Bits,
		trustXFF: cfg.TrustForwardedFor,
		now:      cfg.Now,
	}
	if !l.enabled {
		return l
	}
	if l.burst <= 0 {
		l.burst = DefaultBurst(cfg.RPM)
	}
	if l.max <= 0 {
		l.max = DefaultMaxBuckets
	}
	if l.v6bits <= 0 || l.v6bits > 128 {
		l.v6bits = DefaultIPv6Bits
	}
	if l.now == nil {
		l.now = time.Now
	}
	for _, p := range cfg.TrustedProxies {
		if p.IsValid() {
			l.proxies = append(l.proxies, normPrefix(p))
		}
	}
	l.buckets = make(map[bucketKey]*list.Element, min(l.max, 1024))
	return l
}

// Enabled reports whether the limiter limits anything.
func (l *Limiter) Enabled() bool { return l != nil && l.enabled }

// Len is the number of keys currently remembered (at most MaxBuckets).
func (l *Limiter) Len() int {
	if !l.Enabled() {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Allow takes a token from the bucket of r's client. When there is none
// it returns false and how long until there will be one; the refused
// request takes nothing.
func (l *Limiter) Allow(r *http.Request) (ok bool, retryAfter time.Duration) {
	if !l.Enabled() {
		return true, 0
	}
	return l.allowKey(l.clientKey(r))
}

// AllowKey is Allow for a key the caller computed (for example a user id
// rather than an address). Keys share the limiter's buckets and bound.
func (l *Limiter) AllowKey(key string) (ok bool, retryAfter time.Duration) {
	if !l.Enabled() {
		return true, 0
	}
	return l.allowKey(bucketKey{raw: "key:" + key})
}

func (l *Limiter) allowKey(k bucketKey) (bool, time.Duration) {
	lim := l.bucketFor(k)
	now := l.now()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	// Time until the bucket holds one whole token again. Read after the
	// refusal without holding the bucket's lock in between, so under
	// contention it is an estimate; it is never below one token's worth
	// of refill from the value read.
	missing := 1 - lim.TokensAt(now)
	if missing < 0 {
		missing = 0
	}
	d := time.Duration(math.Ceil(missing / float64(l.limit) * float64(time.Second)))
	return false, max(d, time.Nanosecond)
}

// bucketFor finds k's bucket, creating it (and evicting the least
// recently seen key when full) if needed, and marks it most recent.
func (l *Limiter) bucketFor(k bucketKey) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.buckets[k]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*bucket).lim
	}
	lim := rate.NewLimiter(l.limit, l.burst)
	if len(l.buckets) >= l.max {
		// Reuse the oldest element for the new key: no allocation
		// beyond the limiter itself, and the bound can never be passed.
		e := l.lru.Back()
		b := e.Value.(*bucket)
		delete(l.buckets, b.key)
		b.key, b.lim = k, lim
		l.buckets[k] = e
		l.lru.MoveToFront(e)
		return lim
	}
	l.buckets[k] = l.lru.PushFront(&bucket{key: k, lim: lim})
	return lim
}

// RetryAfterSeconds is the Retry-After value for a wait of d: whole
// seconds rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// WriteTooMany writes the 429 answer for a wait of d:
// Retry-After: N and {"detail":"rate_limit_exceeded","retry_after":N}.
func WriteTooMany(w http.ResponseWriter, d time.Duration) {
	n := strconv.Itoa(RetryAfterSeconds(d))
	w.Header().Set("Retry-After", n)
	httpjson.WriteRaw(w, http.StatusTooManyRequests,
		[]byte(`{"detail":"rate_limit_exceeded","retry_after":`+n+`}`))
}

// Middleware refuses, with WriteTooMany, the requests over the limit.
// Requests for which exempt returns true (exempt may be nil) are passed
// on without being counted. A disabled limiter returns next itself.
func (l *Limiter) Middleware(exempt func(*http.Request) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if !l.Enabled() {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if exempt == nil || !exempt(r) {
				if ok, d := l.Allow(r); !ok {
					WriteTooMany(w, d)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// IsHealth reports whether r is for /health or /health/, the paths the
// predecessor never limited.
func IsHealth(r *http.Request) bool {
	return r.URL.Path == "/health" || r.URL.Path == "/health/"
}

// Not negates a request predicate (for a login limiter: exempt
// everything that is not a login route).
func Not(f func(*http.Request) bool) func(*http.Request) bool {
	return func(r *http.Request) bool { return !f(r) }
}

// ClientKey is the key r is counted under, as text: an IPv4 address
// ("203.0.113.7"), an IPv6 prefix ("2001:db8:1:2::/64"), or the raw peer
// address when it is not an IP address. It is "" for a disabled limiter.
func (l *Limiter) ClientKey(r *http.Request) string {
	if !l.Enabled() {
		return ""
	}
	k := l.clientKey(r)
	switch {
	case !k.addr.IsValid():
		return k.raw
	case k.addr.Is4():
		return k.addr.String()
	default:
		return netip.PrefixFrom(k.addr, l.v6bits).String()
	}
}

func (l *Limiter) clientKey(r *http.Request) bucketKey {
	peer, ok := parseHostPort(r.RemoteAddr)
	if !ok {
		return bucketKey{raw: r.RemoteAddr}
	}
	if l.trustXFF && (len(l.proxies) == 0 || l.trusted(peer)) {
		if a, ok := l.forwardedClient(r.Header.Values("X-Forwarded-For")); ok {
			peer = a
		}
	}
	return l.keyOf(peer)
}

func (l *Limiter) keyOf(a netip.Addr) bucketKey {
	if a.Is4() {
		return bucketKey{addr: a}
	}
	p, err := a.Prefix(l.v6bits)
	if err != nil {
		return bucketKey{addr: a}
	}
	return bucketKey{addr: p.Addr()}
}

// forwardedClient picks the client address out of X-Forwarded-For.
//
// Each proxy appends the address of whoever connected to it, so the
// entries are only as trustworthy as the proxy that wrote them: the
// left-most (first) entry, which the predecessor used, is whatever the
// client chose to send, and a client could get a fresh bucket on every
// request by sending a new one. The right-most entry was written by our
// peer, a trusted proxy; if it is itself a trusted proxy, the entry before
// it was written by that proxy, and so on. The first entry from the right
// that is not a trusted proxy is therefore the real client as seen by the
// outermost trusted proxy; everything to its left is client-controlled and
// ignored. With no TrustedProxies listed only the peer is trusted, so the
// right-most entry is taken.
//
// If every entry is a trusted proxy the left-most is taken. An entry that
// is not an address, or a chain longer than maxForwardedHops, gives false
// (the caller keeps the peer address).
func (l *Limiter) forwardedClient(values []string) (netip.Addr, bool) {
	var last netip.Addr
	hops := 0
	for i := len(values) - 1; i >= 0; i-- {
		s := values[i]
		for {
			var entry string
			if j := strings.LastIndexByte(s, ','); j >= 0 {
				entry, s = s[j+1:], s[:j]
			} else {
				entry, s = s, ""
			}
			entry = strings.TrimSpace(entry)
			if entry != "" {
				if hops++; hops > maxForwardedHops {
					return netip.Addr{}, false
				}
				a, ok := parseHostPort(entry)
				if !ok {
					return netip.Addr{}, false
				}
				if !l.trusted(a) {
					return a, true
				}
				last = a
			}
			if s == "" {
				break
			}
		}
	}
	return last, last.IsValid()
}

func (l *Limiter) trusted(a netip.Addr) bool {
	for _, p := range l.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHostPort reads "ip", "ip:port", "[ipv6]:port" or "[ipv6]",
// dropping any zone and unmapping IPv4-mapped IPv6 addresses (so that an
// IPv4 client on a dual-stack socket is keyed by its IPv4 address, not
// grouped with every other IPv4 client under ::ffff:0:0/64).
func parseHostPort(s string) (netip.Addr, bool) {
	host := s
	if len(s) > 0 && s[0] == '[' {
		j := strings.IndexByte(s, ']')
		if j < 0 || j+1 < len(s) && s[j+1] != ':' {
			return netip.Addr{}, false
		}
		host = s[1:j]
	} else if i := strings.IndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], ':') < 0 {
		host = s[:i] // "ipv4:port"; more than one colon is a bare IPv6 address
	}
	// Split by hand rather than trying netip.ParseAddr and then
	// ParseAddrPort: a failed parse allocates its error, and this is on
	// every request's path.
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

func normPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// ParseProxies reads a list of trusted proxies separated by commas or
// spaces: addresses ("10.0.0.7", "2001:db8::1") or CIDR blocks
// ("10.0.0.0/8", "2001:db8::/32"). An empty list gives nil. The error
// names the first entry that is neither.
func ParseProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' }) {
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR block", f)
			}
			out = append(out, normPrefix(p))
			continue
		}
		a, ok := parseHostPort(f)
		if !ok {
			return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR block", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Environment variables read by ConfigFromEnv.
const (
	EnvRPM               = "RATE_LIMIT_RPM"
	EnvBurst             = "RATE_LIMIT_BURST"
	EnvLoginRPM          = "RATE_LIMIT_LOGIN_RPM"
	EnvLoginBurst        = "RATE_LIMIT_LOGIN_BURST"
	EnvTrustForwardedFor = "RATE_LIMIT_TRUST_X_FORWARDED_FOR"
	EnvTrustedProxies    = "RATE_LIMIT_TRUSTED_PROXY_IPS"
	EnvMaxBuckets        = "RATE_LIMIT_MAX_BUCKETS"
)

// ConfigFromEnv reads the general and the login limits from the
// environment; lookup is usually os.LookupEnv. Every error names the
// variable at fault.
//
//   - RATE_LIMIT_RPM: unset gives 120; empty or 0 disables (as in the
//     predecessor).
//   - RATE_LIMIT_LOGIN_RPM: unset gives 10, or 0 (disabled) when
//     RATE_LIMIT_RPM disables the general limit, so that a deployment
//     that turned rate limiting off keeps it off; empty or 0 disables.
//   - RATE_LIMIT_BURST, RATE_LIMIT_LOGIN_BURST: unset, empty or 0 give
//     DefaultBurst of the RPM.
//   - RATE_LIMIT_TRUST_X_FORWARDED_FOR: 1, true, yes or on
//     (case-insensitive) trusts the header; anything else does not.
//   - RATE_LIMIT_TRUSTED_PROXY_IPS: see ParseProxies.
//   - RATE_LIMIT_MAX_BUCKETS: unset, empty or 0 give 4096; each limiter
//     has its own bound.
func ConfigFromEnv(lookup func(string) (string, bool)) (general, login Config, err error) {
	intVar := func(name string, unset int) (int, error) {
		v, ok := lookup(name)
		if !ok {
			return unset, nil
		}
		v = strings.TrimSpace(v)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s: %q is not a whole number ≥ 0", name, v)
		}
		return n, nil
	}
	var errs []error
	get := func(name string, unset int) int {
		n, err := intVar(name, unset)
		if err != nil {
			errs = append(errs, err)
		}
		return n
	}

	general.RPM = get(EnvRPM, DefaultRPM)
	loginDefault := DefaultLoginRPM
	if general.RPM == 0 {
		loginDefault = 0
	}
	login.RPM = get(EnvLoginRPM, loginDefault)
	general.Burst = get(EnvBurst, 0)
	login.Burst = get(EnvLoginBurst, 0)
	general.MaxBuckets = get(EnvMaxBuckets, DefaultMaxBuckets)

	v, _ := lookup(EnvTrustForwardedFor)
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		general.TrustForwardedFor = true
	}
	v, _ = lookup(EnvTrustedProxies)
	proxies, perr := ParseProxies(v)
	if perr != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvTrustedProxies, perr))
	}
	general.TrustedProxies = proxies

	login.TrustForwardedFor = general.TrustForwardedFor
	login.TrustedProxies = general.TrustedProxies
	login.MaxBuckets = general.MaxBuckets
	if err := errors.Join(errs...); err != nil {
		return Config{}, Config{}, err
	}
	return general, login, nil
}
