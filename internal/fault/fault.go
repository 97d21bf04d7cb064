// Package fault is Lectern's one error vocabulary: a domain function that
// refuses or fails says what kind of failure it is (a Code) and what the
// client is told (a Detail), and never which HTTP status that is. Package
// httpjson maps codes to statuses in one table (httpjson.Status) and
// answers errors in one place (httpjson.Fail), which also logs internal
// errors once.
//
//	return fault.Newf(fault.Invalid, "invalid date %q: use YYYY-MM-DD", date)
//	return fault.New(fault.Conflict, map[string]any{"error": "exam_exists", "exam_id": id})
//	return fault.Wrap(fault.Internal, err, "create exam job failed")
//
// An error that is not a *Error is an internal error.
package fault

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Code is the kind of a failure.
type Code string

// The codes; httpjson.Status gives each one's HTTP status.
const (
	Invalid      Code = "invalid"      // bad input (400)
	NotFound     Code = "not_found"    // 404
	Conflict     Code = "conflict"     // 409
	TooLarge     Code = "too_large"    // 413
	Unsupported  Code = "unsupported"  // unsupported media type (415)
	TooMany      Code = "too_many"     // a bound is reached; retry later (429)
	Timeout      Code = "timeout"      // the request arrived too slowly (408)
	Unavailable  Code = "unavailable"  // 503
	Upstream     Code = "upstream"     // a service we depend on failed (502)
	Unauthorized Code = "unauthorized" // 401
	Forbidden    Code = "forbidden"    // 403
	// MethodNotAllowed: the path exists, the method does not (405).
	MethodNotAllowed Code = "method_not_allowed"
	Internal         Code = "internal" // 500, and logged
)

// Error is a failure as a client is told of it.
type Error struct {
	Code Code
	// Detail is exactly what the client gets as {"detail": Detail}: a
	// string, or an object (a map or struct) for the endpoints whose
	// clients read fields of it. Nil means a generic text.
	Detail any
	// RetryAfter, when positive, is sent as the Retry-After header (whole
	// seconds, at least 1); for TooMany and Unavailable.
	RetryAfter time.Duration
	// Err is the cause: for logs and errors.Is/As, never sent.
	Err error
}

// Error is the detail when it is a string, followed by the cause's text
// unless the detail already ends with it; for an object detail it is the
// cause's text, else the code.
func (e *Error) Error() string {
	msg, _ := e.Detail.(string)
	switch {
	case e.Err == nil && msg == "":
		return string(e.Code)
	case e.Err == nil:
		return msg
	case msg == "":
		return e.Err.Error()
	}
	if cause := e.Err.Error(); !strings.HasSuffix(msg, cause) {
		return msg + ": " + cause
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns a failure of kind code with detail, a string or an object.
func New(code Code, detail any) *Error {
	return &Error{Code: code, Detail: detail}
}

// Newf returns a failure of kind code whose detail is the formatted string
// (fmt.Sprintf: %w does not wrap; use Wrap to keep a cause).
func Newf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns a failure of kind code with detail, caused by err.
func Wrap(code Code, err error, detail any) *Error {
	return &Error{Code: code, Detail: detail, Err: err}
}

// OrInternal keeps err when it carries a client-facing code and makes it
// an internal failure answered with detail otherwise (a non-fault error, or
// an Internal fault); nil stays nil. It is what a handler does with a
// domain call's error before httpjson.Fail.
func OrInternal(err error, detail any) error {
	if CodeOf(err) != Internal {
		return err
	}
	return Wrap(Internal, err, detail)
}

// CodeOf is the code of the first *Error in err's chain: Internal when
// there is none, "" for a nil err.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}
