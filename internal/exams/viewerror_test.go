package exams

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// A *ViewError keeps what the agent's tools read (Error is the message,
// errors.Is the kind, ErrorDetail the object) and is a fault for
// httpjson.Fail.
func TestViewErrorIsAFault(t *testing.T) {
	e := &Exam{ID: "E1"}
	err := fmt.Errorf("tool: %w", responsesMissing(e))
	if !errors.Is(err, ErrNoResponses) || err.Error() != "tool: exam E1 has no scored responses" {
		t.Fatalf("kind or message lost: %v", err)
	}
	var d interface{ ErrorDetail() any }
	if !errors.As(err, &d) || d.ErrorDetail() == nil {
		t.Fatal("ErrorDetail lost")
	}
	if fault.CodeOf(err) != fault.Invalid {
		t.Fatalf("code %q", fault.CodeOf(err))
	}
	w := httptest.NewRecorder()
	httpjson.Fail(w, nil, err)
	if w.Code != 400 || w.Body.String() != `{"detail":{"error":"responses_missing","exam_id":"E1"}}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	httpjson.Fail(w, nil, examNotFound("X"))
	if w.Code != 404 || w.Body.String() != `{"detail":"exam not found"}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
