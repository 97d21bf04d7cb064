package accounts

import (
	"context"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func signRaw(t testing.TB, claims map[string]any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// BenchmarkHash is the Argon2id cost of one login with the default
// parameters (m=64 MiB, t=2, p=2).
func BenchmarkHash(b *testing.B) {
	r := openTest(b, b.TempDir(), Options{TokenSecret: testSecret})
	ctx := context.Background()
	stored, err := r.hashPassword(ctx, "abc12345")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if ok, _, err := r.verifyPassword(ctx, stored, "abc12345"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkVerify is one access-token verification (signature, claims,
// tenant, cached token version).
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	c := newClock()
	r := openTest(b, dir, testOptions(c))
	a := studentWithPassword(b, r, dir, "s1", "张三", "一班", "abc12345")
	tok, _, err := r.Issue(a)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// signSegments signs header.payload (raw JSON, not validated) with the test secret.
func signSegments(t testing.TB, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(s, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s + "." + enc.EncodeToString(sig)
}

// The fast path must accept and refuse exactly what jwt.Parser does.
func TestFastPathMatchesLibrary(t *testing.T) {
	c := newClock()
	r := openTest(t, t.TempDir(), testOptions(c))
	now := c.Now().Unix()
	hdr := `{"alg":"HS256","typ":"JWT"}`
	var tokens []string
	for _, p := range []string{
		fmt.Sprintf(`{"sub":"s1","role":"student","tenant_id":"t1","tv":1,"iat":%d,"exp":%d}`, now, now+60),
		fmt.Sprintf(`{"sub":"s1","role":"student","tv":1,"exp":%d.75,"iat":%d.25}`, now+60, now),
		fmt.Sprintf(`{"sub":"s1","role":"student","tv":1,"exp":"%d"}`, now+60),
		fmt.Sprintf(`{"sub":"s1","role":"student","tv":1,"exp":"soon"}`),
		fmt.Sprintf(`{"sub":"s1","role":"student","tv":1,"exp":%d}`, now-1),
		fmt.Sprintf(`{"sub":"s1","role":"student","tv":1,"exp":%d}`, now),
		fmt.Sprintf(`{"sub":"s1","role":"student","tv":1,"exp":%d,"nbf":%d}`, now+60, now+30),
		fmt.Sprintf(`{"sub":"s1","role":"student","tv":1,"exp":%d,"aud":["a","b"],"iss":"x","jti":"j"}`, now+60),
		fmt.Sprintf(`{"sub":"s1","role":"student","tv":1,"exp":%d,"aud":"a","extra":{"k":[1,2]}}`, now+60),
		fmt.Sprintf(`{"sub":"s1","role":"student","tv":"1","exp":%d}`, now+60),
		fmt.Sprintf(`{"sub":"s1","role":"student","tv":1.5,"exp":%d}`, now+60),
		`{"sub":"s1","role":"student","tv":1}`,
		`{"sub":"s1","exp":null,"tv":null}`,
		`[1,2,3]`,
		`not json`,
		``,
	} {
		tokens = append(tokens, signSegments(t, hdr, p))
	}
	good := tokens[0]
	parts := strings.Split(good, ".")
	tokens = append(tokens,
		parts[0]+"."+parts[1]+"."+parts[2][:len(parts[2])-2]+"AA", // wrong signature
		parts[0]+"."+parts[1]+".",                                 // empty signature
		parts[0]+"."+parts[1]+".!!!",                              // not base64
		parts[0]+"."+parts[1]+"."+parts[2]+"AAAA",                 // long signature
		parts[0]+".!!."+parts[2],
	)
	for i, tok := range tokens {
		head, rest, _ := strings.Cut(tok, ".")
		if head != r.fast.header {
			t.Fatalf("token %d: header %q is not the fast one", i, head)
		}
		var fast, lib jwtClaims
		fe := jwtError(r.fast.parse(tok, rest, &fast))
		_, le := r.parser.ParseWithClaims(tok, &lib, r.keyFunc)
		if Code(fe) != Code(jwtError(le)) {
			t.Errorf("token %d: fast %v, library %v (%v)", i, fe, jwtError(le), le)
			continue
		}
		if fe == nil && !reflect.DeepEqual(fast, lib) {
			t.Errorf("token %d: claims differ:\n%+v\n%+v", i, fast, lib)
		}
	}
}
