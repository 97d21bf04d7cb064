package tenantapp

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/demo"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/policy"
)

// Tenants share one router, yet each request reaches the App it was sent
// to: two tenants list their own exams, concurrently.
func TestSharedRouterServesEachTenantItsOwn(t *testing.T) {
	dir := t.TempDir()
	shared := Shared{Global: limits.NewSet(limits.TenantDefaults())}
	apps := map[string]*App{}
	for _, id := range []string{"t1", "t2"} {
		a, err := New(Settings{TenantID: id, DataDir: filepath.Join(dir, id, "d"), UploadsDir: filepath.Join(dir, id, "u"),
			Prefix: "/t/" + id, Limits: limits.TenantDefaults()}, shared)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := demo.WriteExam(a.Settings().DataDir, demo.Exam{ID: "EXAM_" + id, Date: "2026-01-01", Subject: "math",
			Classes: []string{"c1"}, Students: 2, Questions: []float64{5}, Seed: 1}); err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer a.Stop(context.Background())
		apps[id] = a
	}
	done := make(chan error, 2)
	for id, a := range apps {
		go func() {
			for range 50 {
				w := httptest.NewRecorder()
				a.ServeHTTP(w, httptest.NewRequest("GET", "/exams", nil))
				other := "EXAM_t1"
				if id == "t1" {
					other = "EXAM_t2"
				}
				if w.Code != 200 || !strings.Contains(w.Body.String(), "EXAM_"+id) || strings.Contains(w.Body.String(), other) {
					done <- &mismatch{id: id, body: w.Body.String()}
					return
				}
			}
			done <- nil
		}()
	}
	for range apps {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if openRouter() != apps["t1"].router() || apps["t1"].router() != apps["t2"].router() {
		t.Error("the two open-mode tenants do not share the router")
	}
}

type mismatch struct{ id, body string }

func (m *mismatch) Error() string { return "tenant " + m.id + " answered " + m.body }

// The shared router's table is the route table: every route of appRoutes
// with its rule, in order, then (with authentication on) the /auth/*
// routes authapi registers, then the catch-all; a tenant with accounts
// serves its own /auth/* routes.
func TestSharedRouterRoutes(t *testing.T) {
	// A route as a string: its pattern and its rule's name.
	str := func(rs []policy.Route) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Pattern+" "+r.Rule.String())
		}
		return out
	}
	var want []string
	for _, rt := range appRoutes() {
		want = append(want, rt.pattern+" "+rt.rule.String())
	}
	catchAll := "/ " + policy.Public.String()
	open := str(newApp(t).Routes())
	if !slices.Equal(open, append(slices.Clone(want), catchAll)) {
		t.Errorf("open-mode routes differ from the table:\n%v", open)
	}

	dir := t.TempDir()
	a, err := New(Settings{TenantID: "t1", DataDir: filepath.Join(dir, "d"), UploadsDir: filepath.Join(dir, "u"),
		Limits: limits.TenantDefaults(), Auth: AuthSettings{Enabled: true, Secret: []byte(strings.Repeat("s", 32)), TTL: time.Hour,
			AdminPassword: "admin-password-1"}}, Shared{Global: limits.NewSet(limits.TenantDefaults())})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	routes := str(a.Routes())
	if len(routes) <= len(open) || !slices.Equal(routes[:len(want)], want) || routes[len(routes)-1] != catchAll {
		t.Fatalf("auth routes: %v", routes)
	}
	var auth int
	for _, rt := range routes[len(want) : len(routes)-1] {
		if !strings.Contains(rt, " /auth/") {
			t.Errorf("route %v between the table and the catch-all", rt)
		}
		auth++
	}
	if auth == 0 {
		t.Fatal("no /auth/* routes with authentication on")
	}
	// The admin logs in through the shared router, into this tenant's
	// accounts.
	w := httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest("POST", "/auth/admin/login",
		strings.NewReader(`{"username":"admin","password":"admin-password-1"}`)))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "token") {
		t.Errorf("admin login: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest("GET", "/exams", nil))
	if w.Code != 401 {
		t.Errorf("GET /exams without a token, auth on: %d, want 401", w.Code)
	}
}
