package ratelimit

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/testfixtures"
)

// clock is the tests' settable clock.
type clock = testfixtures.Clock

func newClock() *clock { return testfixtures.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

func req(remote string, xff ...string) *http.Request {
	r := httptest.NewRequest("GET", "/api/x", nil)
	r.RemoteAddr = remote
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	return r
}

func mustProxies(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := ParseProxies(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "ok")
})

func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	r, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestOverLimitHTTP429(t *testing.T) {
	clk := newClock()
	l := New(Config{RPM: 60, Burst: 3, Now: clk.Now})
	srv := httptest.NewServer(l.Middleware(IsHealth)(okHandler))
	defer srv.Close()
	c := srv.Client()

	for i := range 3 {
		if resp, _ := get(t, c, srv.URL+"/api"); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	resp, body := get(t, c, srv.URL+"/api")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", resp.StatusCode)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if want := `{"detail":"rate_limit_exceeded","retry_after":1}`; body != want {
		t.Errorf("body %q, want %q", body, want)
	}

	// The login rate: 10/min, one token every 6 s.
	clk2 := newClock()
	login := New(Config{RPM: 10, Burst: 1, Now: clk2.Now})
	srv2 := httptest.NewServer(login.Middleware(nil)(okHandler))
	defer srv2.Close()
	get(t, srv2.Client(), srv2.URL)
	resp, body = get(t, srv2.Client(), srv2.URL)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "6" ||
		body != `{"detail":"rate_limit_exceeded","retry_after":6}` {
		t.Errorf("login: %d %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	clk2.Advance(3 * time.Second)
	if resp, body = get(t, srv2.Client(), srv2.URL); resp.Header.Get("Retry-After") != "3" {
		t.Errorf("after 3 s: Retry-After %q, body %q", resp.Header.Get("Retry-After"), body)
	}
}

func TestRefillAfterTimePasses(t *testing.T) {
	clk := newClock()
	l := New(Config{RPM: 120, Burst: 2, Now: clk.Now}) // 2 tokens/s
	r := req("198.51.100.1:1000")
	for range 2 {
		if ok, _ := l.Allow(r); !ok {
			t.Fatal("refused within burst")
		}
	}
	ok, d := l.Allow(r)
	if ok || d != 500*time.Millisecond {
		t.Fatalf("over burst: ok=%v retry=%v, want false 500ms", ok, d)
	}
	clk.Advance(499 * time.Millisecond)
	if ok, _ := l.Allow(r); ok {
		t.Fatal("allowed before a token was back")
	}
	clk.Advance(time.Millisecond)
	if ok, _ := l.Allow(r); !ok {
		t.Fatal("refused after refill")
	}
	// A long idle time refills to the burst, not beyond.
	clk.Advance(time.Hour)
	n := 0
	for {
		if ok, _ := l.Allow(r); !ok {
			break
		}
		n++
	}
	if n != 2 {
		t.Fatalf("after idle: %d allowed, want burst 2", n)
	}
}

func TestRefusedRequestsDoNotCount(t *testing.T) {
	clk := newClock()
	l := New(Config{RPM: 60, Burst: 1, Now: clk.Now})
	r := req("198.51.100.1:1000")
	l.Allow(r)
	for range 100 { // hammering while empty must not push the refill back
		l.Allow(r)
		clk.Advance(5 * time.Millisecond)
	}
	clk.Advance(500 * time.Millisecond)
	if ok, _ := l.Allow(r); !ok {
		t.Fatal("refused requests consumed tokens")
	}
}

func TestExemptPaths(t *testing.T) {
	clk := newClock()
	l := New(Config{RPM: 60, Burst: 1, Now: clk.Now})
	srv := httptest.NewServer(l.Middleware(IsHealth)(okHandler))
	defer srv.Close()
	c := srv.Client()
	for range 20 {
		for _, p := range []string{"/health", "/health/"} {
			if resp, _ := get(t, c, srv.URL+p); resp.StatusCode != 200 {
				t.Fatalf("%s: status %d", p, resp.StatusCode)
			}
		}
	}
	// /health was not counted: the one token is still there.
	if resp, _ := get(t, c, srv.URL+"/api"); resp.StatusCode != 200 {
		t.Fatalf("first counted request: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, srv.URL+"/healthz"); resp.StatusCode != 429 {
		t.Fatalf("/healthz is not exempt: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, srv.URL+"/health"); resp.StatusCode != 200 {
		t.Fatalf("/health over the limit: %d", resp.StatusCode)
	}
}

func TestLoginLimiterChained(t *testing.T) {
	clk := newClock()
	general := New(Config{RPM: 120, Burst: 20, Now: clk.Now})
	login := New(Config{RPM: 10, Burst: 2, Now: clk.Now})
	isLogin := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/login") }
	h := general.Middleware(IsHealth)(login.Middleware(Not(isLogin))(okHandler))
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := srv.Client()

	for i := range 2 {
		if resp, _ := get(t, c, srv.URL+"/auth/student/login"); resp.StatusCode != 200 {
			t.Fatalf("login %d: %d", i, resp.StatusCode)
		}
	}
	resp, body := get(t, c, srv.URL+"/auth/student/login")
	if resp.StatusCode != 429 || body != `{"detail":"rate_limit_exceeded","retry_after":6}` {
		t.Fatalf("third login: %d %q", resp.StatusCode, body)
	}
	// Other routes still have the general budget (minus the 3 logins).
	for i := range 17 {
		if resp, _ := get(t, c, srv.URL+"/lessons"); resp.StatusCode != 200 {
			t.Fatalf("general request %d: %d", i, resp.StatusCode)
		}
	}
	if resp, _ := get(t, c, srv.URL+"/lessons"); resp.StatusCode != 429 {
		t.Fatalf("general limit not applied: %d", resp.StatusCode)
	}
}

func TestForwardedFor(t *testing.T) {
	proxies := "10.0.0.0/8, 192.0.2.5 2001:db8:ffff::/48"
	cases := []struct {
		name    string
		trust   bool
		proxies string
		remote  string
		xff     []string
		want    string
	}{
		{"trust off ignores header", false, "", "10.1.1.1:5", []string{"203.0.113.9"}, "10.1.1.1"},
		{"untrusted peer ignored", true, proxies, "198.51.100.7:5", []string{"203.0.113.9"}, "198.51.100.7"},
		{"trusted peer, one hop", true, proxies, "10.1.1.1:5", []string{"203.0.113.9"}, "203.0.113.9"},
		{"trusted single address", true, proxies, "192.0.2.5:5", []string{"203.0.113.9"}, "203.0.113.9"},
		{"spoofed first entries ignored", true, proxies, "10.1.1.1:5", []string{"1.1.1.1, 2.2.2.2, 203.0.113.9"}, "203.0.113.9"},
		{"right-most untrusted after trusted hops", true, proxies, "10.1.1.1:5", []string{"1.1.1.1, 203.0.113.9, 10.2.2.2, 192.0.2.5"}, "203.0.113.9"},
		{"several header lines", true, proxies, "10.1.1.1:5", []string{"1.1.1.1, 203.0.113.9", "10.2.2.2"}, "203.0.113.9"},
		{"spoofed trusted entry left of client", true, proxies, "10.1.1.1:5", []string{"10.9.9.9, 203.0.113.9"}, "203.0.113.9"},
		{"all trusted takes left-most", true, proxies, "10.1.1.1:5", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"no header keeps peer", true, proxies, "10.1.1.1:5", nil, "10.1.1.1"},
		{"garbage keeps peer", true, proxies, "10.1.1.1:5", []string{"203.0.113.9, not-an-ip"}, "10.1.1.1"},
		{"garbage left of client ignored", true, proxies, "10.1.1.1:5", []string{"not-an-ip, 203.0.113.9"}, "203.0.113.9"},
		{"entry with port", true, proxies, "10.1.1.1:5", []string{"203.0.113.9:4711"}, "203.0.113.9"},
		{"bracketed ipv6 entry", true, proxies, "10.1.1.1:5", []string{"[2001:db8:1:2::7]:443"}, "2001:db8:1:2::/64"},
		{"ipv6 proxy", true, proxies, "[2001:db8:ffff:1::1]:5", []string{"203.0.113.9"}, "203.0.113.9"},
		{"empty list trusts the peer, takes right-most", true, "", "198.51.100.7:5", []string{"1.1.1.1, 203.0.113.9"}, "203.0.113.9"},
		{"empty entries skipped", true, proxies, "10.1.1.1:5", []string{"203.0.113.9, , "}, "203.0.113.9"},
		{"too many hops keeps peer", true, proxies, "10.1.1.1:5", []string{"203.0.113.9" + strings.Repeat(", 10.0.0.1", 40)}, "10.1.1.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := New(Config{RPM: 60, TrustForwardedFor: c.trust, TrustedProxies: mustProxies(t, c.proxies)})
			if got := l.ClientKey(req(c.remote, c.xff...)); got != c.want {
				t.Errorf("key %q, want %q", got, c.want)
			}
		})
	}
}

// A client behind a trusted proxy cannot get a fresh bucket by sending a
// new first X-Forwarded-For entry on every request: the httptest client
// connects from 127.0.0.1, treated as the trusted proxy that appended the
// client's address.
func TestSpoofedForwardedForSharesBucket(t *testing.T) {
	clk := newClock()
	l := New(Config{RPM: 60, Burst: 3, Now: clk.Now, TrustForwardedFor: true,
		TrustedProxies: mustProxies(t, "127.0.0.0/8,::1")})
	srv := httptest.NewServer(l.Middleware(nil)(okHandler))
	defer srv.Close()
	c := srv.Client()
	codes := ""
	for i := range 6 {
		resp, _ := get(t, c, srv.URL, "X-Forwarded-For", fmt.Sprintf("10.%d.0.1, 203.0.113.9", i))
		codes += fmt.Sprint(resp.StatusCode, " ")
	}
	if codes != "200 200 200 429 429 429 " {
		t.Fatalf("statuses %s", codes)
	}
	// Another client behind the same proxy has its own bucket.
	if resp, _ := get(t, c, srv.URL, "X-Forwarded-For", "203.0.113.10"); resp.StatusCode != 200 {
		t.Fatalf("other client: %d", resp.StatusCode)
	}
	// Without a trusted peer the header is ignored: everything counts
	// against 127.0.0.1.
	l2 := New(Config{RPM: 60, Burst: 3, Now: clk.Now, TrustForwardedFor: true,
		TrustedProxies: mustProxies(t, "10.0.0.0/8")})
	srv2 := httptest.NewServer(l2.Middleware(nil)(okHandler))
	defer srv2.Close()
	codes = ""
	for i := range 5 {
		resp, _ := get(t, srv2.Client(), srv2.URL, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		codes += fmt.Sprint(resp.StatusCode, " ")
	}
	if codes != "200 200 200 429 429 " {
		t.Fatalf("untrusted peer: statuses %s", codes)
	}
}

func TestIPv6Grouping(t *testing.T) {
	clk := newClock()
	l := New(Config{RPM: 60, Burst: 2, Now: clk.Now})
	for _, c := range []struct{ remote, want string }{
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:80", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"[::ffff:203.0.113.9]:80", "203.0.113.9"},
		{"203.0.113.9:80", "203.0.113.9"},
		{"pipe", "pipe"},
		{"", ""},
	} {
		if got := l.ClientKey(req(c.remote)); got != c.want {
			t.Errorf("ClientKey(%q) = %q, want %q", c.remote, got, c.want)
		}
	}

	// Two addresses of one /64 share a bucket; the next /64 has its own.
	a, b := req("[2001:db8:1:2::1]:1"), req("[2001:db8:1:2:dead:beef:0:1]:2")
	other := req("[2001:db8:1:3::1]:1")
	l.Allow(a)
	l.Allow(b)
	if ok, _ := l.Allow(a); ok {
		t.Error("same /64 got a second bucket")
	}
	if ok, _ := l.Allow(other); !ok {
		t.Error("other /64 refused")
	}
	// IPv4-mapped addresses are keyed per IPv4 address, not lumped into
	// ::ffff:0:0/64.
	if ok, _ := l.Allow(req("[::ffff:198.51.100.1]:1")); !ok {
		t.Error("mapped v4 refused")
	}
	if ok, _ := l.Allow(req("[::ffff:198.51.100.2]:1")); !ok {
		t.Error("a second mapped v4 shares a bucket with the first")
	}

	l48 := New(Config{RPM: 60, IPv6Bits: 48})
	if got := l48.ClientKey(req("[2001:db8:1:2::1]:1")); got != "2001:db8:1::/48" {
		t.Errorf("IPv6Bits 48: %q", got)
	}
}

func TestBucketBound(t *testing.T) {
	clk := newClock()
	const maxBuckets = 1000
	l := New(Config{RPM: 60, Burst: 1, MaxBuckets: maxBuckets, Now: clk.Now})
	keep := req("192.0.2.1:1")
	l.Allow(keep) // empties its bucket

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := req("")
	for i := range 100_000 {
		if i%100 == 0 {
			l.Allow(keep) // seen recently: never evicted
		}
		r.RemoteAddr = fmt.Sprintf("[2001:db8:%x:%x::1]:1", i>>16, i&0xffff)
		if ok, _ := l.Allow(r); !ok {
			t.Fatalf("fresh key %d refused", i)
		}
		if n := l.Len(); n > maxBuckets {
			t.Fatalf("%d buckets after %d keys, bound %d", n, i+1, maxBuckets)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if l.Len() != maxBuckets {
		t.Errorf("Len %d, want %d", l.Len(), maxBuckets)
	}
	if ok, _ := l.Allow(keep); ok {
		t.Error("a recently seen key was evicted (its bucket came back full)")
	}
	// 1000 buckets are well under 1 MiB; 100k retained ones would be
	// tens of MiB.
	grow := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap growth for %d buckets: %d bytes", maxBuckets, grow)
	if grow > 2<<20 {
		t.Errorf("heap grew by %d bytes for %d buckets", grow, maxBuckets)
	}

	// The default bound is 4096, and the least recently seen key goes.
	l = New(Config{RPM: 60, Burst: 1, Now: clk.Now})
	first := req("198.51.100.1:1")
	l.Allow(first)
	for i := range DefaultMaxBuckets {
		r.RemoteAddr = fmt.Sprintf("10.%d.%d.1:1", i>>8, i&0xff)
		l.Allow(r)
	}
	if l.Len() != DefaultMaxBuckets {
		t.Fatalf("Len %d, want %d", l.Len(), DefaultMaxBuckets)
	}
	if ok, _ := l.Allow(first); !ok {
		t.Error("least recently seen key was not evicted")
	}
}

func TestConcurrentUse(t *testing.T) {
	clk := newClock()
	l := New(Config{RPM: 60, Burst: 50, MaxBuckets: 64, Now: clk.Now})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			shared := req("203.0.113.1:1")
			own := req("")
			for i := range 2000 {
				if ok, _ := l.Allow(shared); ok {
					allowed.Add(1)
				}
				// Churn through more keys than the bound, concurrently.
				own.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1", g, i>>8, i&0xff)
				l.Allow(own)
				_ = l.ClientKey(own)
			}
		}()
	}
	wg.Wait()
	// The clock stood still: exactly one burst got through, whatever the
	// interleaving. shared is never evicted: between two of its uses each
	// goroutine adds at most one other key, 8 < 64.
	if got := allowed.Load(); got != 50 {
		t.Errorf("%d allowed for one key, burst 50", got)
	}
	if n := l.Len(); n > 64 {
		t.Errorf("Len %d over bound", n)
	}
}

type countHandler struct{ n int }

func (h *countHandler) ServeHTTP(http.ResponseWriter, *http.Request) { h.n++ }

func TestDisabled(t *testing.T) {
	for name, l := range map[string]*Limiter{
		"rpm 0":    New(Config{}),
		"negative": New(Config{RPM: -1, TrustForwardedFor: true}),
		"nil":      nil,
	} {
		t.Run(name, func(t *testing.T) {
			if l.Enabled() {
				t.Fatal("enabled")
			}
			h := &countHandler{}
			if got := l.Middleware(nil)(h); got != http.Handler(h) {
				t.Fatal("disabled middleware wraps the handler")
			}
			r := req("203.0.113.1:1")
			for range 10_000 {
				if ok, d := l.Allow(r); !ok || d != 0 {
					t.Fatal("refused")
				}
			}
			if ok, _ := l.AllowKey("x"); !ok {
				t.Fatal("AllowKey refused")
			}
			if l.Len() != 0 || l.ClientKey(r) != "" {
				t.Fatal("disabled limiter keeps state")
			}
			if a := testing.AllocsPerRun(100, func() { l.Allow(r) }); a != 0 {
				t.Errorf("%v allocs per Allow", a)
			}
		})
	}
}

func TestAllowExistingKeyDoesNotAllocate(t *testing.T) {
	l := New(Config{RPM: 60, TrustForwardedFor: true, TrustedProxies: mustProxies(t, "10.0.0.0/8")})
	for _, r := range []*http.Request{
		req("203.0.113.1:1"),
		req("[2001:db8::1]:1"),
		req("10.0.0.1:1", "198.51.100.1, 10.0.0.2"),
	} {
		l.Allow(r)
		if a := testing.AllocsPerRun(1000, func() { l.Allow(r) }); a != 0 {
			t.Errorf("%s: %v allocs per Allow", r.RemoteAddr, a)
		}
	}
}

func TestAllowKey(t *testing.T) {
	clk := newClock()
	l := New(Config{RPM: 60, Burst: 1, Now: clk.Now})
	if ok, _ := l.AllowKey("teacher:7"); !ok {
		t.Fatal("first refused")
	}
	if ok, d := l.AllowKey("teacher:7"); ok || d != time.Second {
		t.Fatalf("second: %v %v", ok, d)
	}
	// A caller key never collides with a raw peer address.
	if ok, _ := l.Allow(req("teacher:7")); !ok {
		t.Fatal("raw peer shares the AllowKey bucket")
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Nanosecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {5500 * time.Millisecond, 6}} {
		if got := RetryAfterSeconds(c.d); got != c.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestDefaultBurst(t *testing.T) {
	for rpm, want := range map[int]int{0: 0, 1: 1, 3: 3, 10: 5, 30: 5, 60: 10, 120: 20, 121: 21, 600: 100} {
		if got := DefaultBurst(rpm); got != want {
			t.Errorf("DefaultBurst(%d) = %d, want %d", rpm, got, want)
		}
	}
	clk := newClock()
	l := New(Config{RPM: 120, Now: clk.Now})
	n := 0
	for r := req("203.0.113.1:1"); ; n++ {
		if ok, _ := l.Allow(r); !ok {
			break
		}
	}
	if n != 20 {
		t.Errorf("default burst at 120 RPM: %d", n)
	}
}

func TestParseProxies(t *testing.T) {
	got, err := ParseProxies(" 10.0.0.0/8, 192.0.2.5 2001:db8::1,2001:db8:1::/48\t::ffff:172.16.0.0/108 10.1.2.3/8 ")
	if err != nil {
		t.Fatal(err)
	}
	want := "[10.0.0.0/8 192.0.2.5/32 2001:db8::1/128 2001:db8:1::/48 172.16.0.0/12 10.0.0.0/8]"
	if s := fmt.Sprint(got); s != want {
		t.Errorf("got %s, want %s", s, want)
	}
	if p, err := ParseProxies("  , "); err != nil || p != nil {
		t.Errorf("empty: %v %v", p, err)
	}
	for _, bad := range []string{"proxy.local", "10.0.0.0/33", "10.0.0.1,nope"} {
		if _, err := ParseProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// A mapped proxy address matches the plain IPv4 peer.
	l := New(Config{RPM: 60, TrustForwardedFor: true, TrustedProxies: mustProxies(t, "::ffff:10.0.0.1")})
	if k := l.ClientKey(req("10.0.0.1:1", "203.0.113.9")); k != "203.0.113.9" {
		t.Errorf("mapped proxy not trusted: %q", k)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	g, l, err := ConfigFromEnv(env())
	if err != nil {
		t.Fatal(err)
	}
	if g.RPM != 120 || l.RPM != 10 || g.MaxBuckets != 4096 || l.MaxBuckets != 4096 || g.TrustForwardedFor || g.Burst != 0 {
		t.Errorf("defaults: %+v %+v", g, l)
	}

	g, l, err = ConfigFromEnv(env(EnvRPM, "0"))
	if err != nil || g.RPM != 0 || l.RPM != 0 {
		t.Errorf("RPM 0 must disable both unless the login RPM is set: %+v %+v %v", g, l, err)
	}
	g, l, err = ConfigFromEnv(env(EnvRPM, "", EnvLoginRPM, "5"))
	if err != nil || g.RPM != 0 || l.RPM != 5 {
		t.Errorf("empty RPM, login 5: %+v %+v %v", g, l, err)
	}

	g, l, err = ConfigFromEnv(env(EnvRPM, " 300 ", EnvBurst, "50", EnvLoginRPM, "0", EnvLoginBurst, "3",
		EnvTrustForwardedFor, "Yes", EnvTrustedProxies, "10.0.0.0/8,192.0.2.1", EnvMaxBuckets, "100"))
	if err != nil {
		t.Fatal(err)
	}
	if g.RPM != 300 || g.Burst != 50 || l.RPM != 0 || l.Burst != 3 || !g.TrustForwardedFor || !l.TrustForwardedFor ||
		len(g.TrustedProxies) != 2 || len(l.TrustedProxies) != 2 || g.MaxBuckets != 100 || l.MaxBuckets != 100 {
		t.Errorf("set: %+v %+v", g, l)
	}
	for _, v := range []string{"1", "true", "ON", "yes"} {
		if g, _, _ := ConfigFromEnv(env(EnvTrustForwardedFor, v)); !g.TrustForwardedFor {
			t.Errorf("%q not truthy", v)
		}
	}
	for _, v := range []string{"0", "false", "", "enabled"} {
		if g, _, _ := ConfigFromEnv(env(EnvTrustForwardedFor, v)); g.TrustForwardedFor {
			t.Errorf("%q truthy", v)
		}
	}

	_, _, err = ConfigFromEnv(env(EnvRPM, "fast", EnvTrustedProxies, "proxy.local", EnvMaxBuckets, "-1"))
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, name := range []string{EnvRPM, EnvTrustedProxies, EnvMaxBuckets} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

// BenchmarkAllow measures Allow for an existing key (the common case):
// peer parsing, the bucket lookup and LRU update, and the token bucket.
func BenchmarkAllow(b *testing.B) {
	for _, c := range []struct {
		name string
		cfg  Config
		r    *http.Request
	}{
		{"ipv4", Config{RPM: 1 << 30}, req("203.0.113.1:5555")},
		{"ipv6", Config{RPM: 1 << 30}, req("[2001:db8:1:2::7]:5555")},
		{"xff", Config{RPM: 1 << 30, TrustForwardedFor: true, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			req("10.0.0.1:5555", "198.51.100.9, 203.0.113.1, 10.0.0.2")},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := New(c.cfg)
			for i := range DefaultMaxBuckets - 1 { // a full table
				l.AllowKey(fmt.Sprint(i))
			}
			l.Allow(c.r)
			b.ReportAllocs()
			for b.Loop() {
				l.Allow(c.r)
			}
		})
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	l := New(Config{RPM: 1 << 30})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := req("203.0.113.1:5555")
		for pb.Next() {
			l.Allow(r)
		}
	})
}
