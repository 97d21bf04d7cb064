package assignments

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/caller"
)

// The predecessor's specificity table.
func TestSpecificity(t *testing.T) {
	for _, c := range []struct {
		meta  map[string]any
		sid   string
		class string
		want  int
	}{
		{map[string]any{"scope": "student", "student_ids": []any{"s1"}}, "s1", "", 3},
		{map[string]any{"scope": "student", "student_ids": "s2, s3"}, "s1", "", 0},
		{map[string]any{"scope": "class", "class_name": "一班"}, "s1", "一班", 2},
		{map[string]any{"scope": "class", "class_name": "一班"}, "s1", "二班", 0},
		{map[string]any{"scope": "public"}, "s1", "", 1},
		{map[string]any{"student_ids": "s1，s2"}, "s1", "", 3},
		{map[string]any{"student_ids": []any{"s2"}}, "s1", "一班", 0},
		{map[string]any{"class_name": "一班"}, "s1", "一班", 2},
		{map[string]any{"class_name": "一班"}, "s1", "二班", 1},
		{map[string]any{}, "s1", "", 1},
	} {
		if got := specificity(c.meta, c.sid, c.class); got != c.want {
			t.Errorf("%v for %s (%s): %d, want %d", c.meta, c.sid, c.class, got, c.want)
		}
	}
}

// fakeGen records auto-generation calls and makes a minimal assignment.
type fakeGen struct {
	svc   *Service
	calls []fakeCall
}

type fakeCall struct {
	sid, class, date string
	kps              []string
	perKP            int
	useLLM           bool
}

func (g *fakeGen) AutoGenerate(ctx context.Context, sid, class, date string, kps []string, perKP int, useLLM bool) (string, error) {
	g.calls = append(g.calls, fakeCall{sid, class, date, kps, perKP, useLLM})
	id := "AUTO_" + sid + "_" + date
	err := atomicfile.WriteJSON(filepath.Join(g.svc.DataDir(), "assignments", id, "meta.json"), map[string]any{
		"assignment_id": id, "date": date, "source": "auto", "mode": "auto", "scope": "student", "student_ids": []string{sid}})
	return id, err
}

// Today without auto_generate only reads; with it, a missing assignment
// is generated once from the profile's focus (ignoring "(none)"), and the
// second call finds it.
func TestTodayAutoGenerate(t *testing.T) {
	data := t.TempDir()
	svc := NewService(data)
	gen := &fakeGen{svc: svc}
	if err := atomicfile.WriteJSON(filepath.Join(data, "student_profiles", "s1.json"), map[string]any{
		"student_id": "s1", "class_name": "高二1班", "next_focus": "(none)",
		"recent_weak_kp": []string{"牛顿第二定律", ""}, "recent_medium_kp": "受力分析, 牛顿第二定律"}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.Local)
	got, err := svc.Today("s1", "2026-12-01", now, TodayOptions{Generator: gen})
	if err != nil || got.Assignment != nil || len(gen.calls) != 0 {
		t.Fatalf("without auto_generate: %+v %v calls %d", got, err, len(gen.calls))
	}
	opts := TodayOptions{AutoGenerate: true, Generate: true, PerKP: 3, Generator: gen}
	got, err = svc.Today("s1", "2026-12-01", now, opts)
	if err != nil || got.Assignment == nil || got.Assignment.AssignmentID != "AUTO_s1_2026-12-01" {
		t.Fatalf("auto: %+v %v", got, err)
	}
	want := fakeCall{"s1", "高二1班", "2026-12-01", []string{"牛顿第二定律", "受力分析"}, 3, true}
	if len(gen.calls) != 1 || !reflect.DeepEqual(gen.calls[0], want) {
		t.Fatalf("calls %+v, want %+v", gen.calls, want)
	}
	if got, err = svc.Today("s1", "2026-12-01", now, opts); err != nil || got.Assignment == nil || len(gen.calls) != 1 {
		t.Fatalf("second call: %+v %v calls %d", got, err, len(gen.calls))
	}
	// No profile: uncategorized.
	if _, err := svc.Today("s2", "2026-12-01", now, opts); err != nil || len(gen.calls) != 2 ||
		!reflect.DeepEqual(gen.calls[1].kps, []string{"uncategorized"}) {
		t.Fatalf("s2: %v %+v", err, gen.calls)
	}
	// No generator wired: null.
	if got, err := svc.Today("s3", "2026-12-01", now, TodayOptions{AutoGenerate: true}); err != nil || got.Assignment != nil {
		t.Fatalf("no generator: %+v %v", got, err)
	}
}

// The handler's query parameters.
func TestTodayHandlerParams(t *testing.T) {
	data := t.TempDir()
	svc := NewService(data)
	gen := &fakeGen{svc: svc}
	api := NewAPI(svc, nil)
	h := api.TodayWith(gen)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r.WithContext(caller.With(r.Context(), caller.Principal{Role: caller.RoleStudent, StudentID: "s1"})))
	}))
	t.Cleanup(srv.Close)
	for q, want := range map[string]int{
		"auto_generate=maybe": 400, "generate=2": 400, "per_kp=0": 400, "per_kp=21": 400, "per_kp=x": 400,
		"date=2026-12-01": 200, "date=2026-12-01&auto_generate=true&generate=false&per_kp=2": 200,
	} {
		resp, err := http.Get(srv.URL + "/assignment/today?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", q, resp.StatusCode, want)
		}
	}
	if len(gen.calls) != 1 || gen.calls[0].perKP != 2 || gen.calls[0].useLLM {
		t.Fatalf("calls %+v", gen.calls)
	}
}
