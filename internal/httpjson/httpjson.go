// Package httpjson encodes and decodes the JSON bodies of Lectern's HTTP
// APIs, and writes errors in the one shape every client expects:
// {"detail": ...}. Status is the one table from fault codes to HTTP
// statuses, and Fail the one writer of a failed request's answer.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/textcut"
)

// MaxBody bounds a JSON request body.
const MaxBody = 1 << 20

// Write sends v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(`{"detail":"response could not be encoded"}`)
	}
	WriteRaw(w, status, data)
}

// WriteRaw sends an already encoded JSON body, with its Content-Length:
// a body over net/http's 4 KiB buffer otherwise goes out chunked, with an
// extra write.
func WriteRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["X-Content-Type-Options"] = nosniff
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
}

// Shared header values (never modified): no allocation per answer.
var (
	contentTypeJSON = []string{"application/json"}
	nosniff         = []string{"nosniff"}
)

// Error sends {"detail": detail}. detail is usually a string; some
// endpoints of the predecessor put an object there, and so may callers.
// Handlers answer failures with Fail; Error is for the few answers that
// are not a fault (see package tenancy's dispatcher).
func Error(w http.ResponseWriter, status int, detail any) {
	Write(w, status, map[string]any{"detail": detail})
}

// statuses is the one table from fault codes to HTTP statuses.
var statuses = map[fault.Code]int{
	fault.Invalid:          http.StatusBadRequest,
	fault.NotFound:         http.StatusNotFound,
	fault.Conflict:         http.StatusConflict,
	fault.TooLarge:         http.StatusRequestEntityTooLarge,
	fault.Unsupported:      http.StatusUnsupportedMediaType,
	fault.TooMany:          http.StatusTooManyRequests,
	fault.Timeout:          http.StatusRequestTimeout,
	fault.Unavailable:      http.StatusServiceUnavailable,
	fault.Upstream:         http.StatusBadGateway,
	fault.Unauthorized:     http.StatusUnauthorized,
	fault.Forbidden:        http.StatusForbidden,
	fault.MethodNotAllowed: http.StatusMethodNotAllowed,
	fault.Internal:         http.StatusInternalServerError,
}

// Status is the HTTP status of a fault code (see statuses). An unknown
// code is 500.
func Status(c fault.Code) int {
	if s, ok := statuses[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// internalDetail is what a client is told of an internal error that has
// no detail of its own: never the error's text.
const internalDetail = "internal error"

// Fail answers a failed request. The first *fault.Error in err's chain
// gives the status (Status), the Retry-After header (when RetryAfter is
// set: whole seconds, rounded up, at least 1) and the body
// {"detail": Detail}. Any other error is internal: 500
// {"detail":"internal error"}. Internal errors (and unknown codes) are
// logged once, here, at error level with their cause, so handlers do not
// log them themselves; log nil means slog.Default().
func Fail(w http.ResponseWriter, log *slog.Logger, err error) {
	var fe *fault.Error
	if !errors.As(err, &fe) {
		if err == nil {
			err = errors.New("httpjson.Fail called without an error")
		}
		fe = &fault.Error{Code: fault.Internal, Err: err}
	}
	status := Status(fe.Code)
	detail := fe.Detail
	if detail == nil {
		detail = http.StatusText(status)
		if status == http.StatusInternalServerError {
			detail = internalDetail
		}
	}
	if status == http.StatusInternalServerError {
		if log == nil {
			log = slog.Default()
		}
		msg, ok := detail.(string)
		if !ok {
			msg = internalDetail
		}
		cause := fe.Err
		if err != error(fe) { // fe was wrapped: log the whole chain
			cause = err
		}
		if cause != nil {
			log.Error(msg, "err", cause)
		} else {
			log.Error(msg)
		}
	}
	if fe.RetryAfter > 0 {
		secs := max(int64((fe.RetryAfter+time.Second-1)/time.Second), 1)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	Error(w, status, detail)
}

// Decode reads one JSON value from r's body into v. Unknown fields,
// trailing data and bodies over MaxBody are errors: a *fault.Error whose
// detail is fit to show the client, TooLarge for a body over its bound,
// Timeout for one that arrived too slowly (see package bodydeadline), else
// Invalid.
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describe(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fault.New(fault.Invalid, "invalid JSON body: unexpected data after the JSON value")
	}
	return nil
}

// ErrBodyTooLarge is wrapped by Decode's error for a body over its bound.
var ErrBodyTooLarge = errors.New("request body too large")

// DecodeFailed answers a request whose body Decode refused (Fail with
// Decode's fault); an error that is not a fault is answered 400 with its
// text, as Decode's errors were before they were faults.
func DecodeFailed(w http.ResponseWriter, err error) {
	if err != nil && fault.CodeOf(err) == fault.Internal {
		err = fault.Wrap(fault.Invalid, err, err.Error())
	}
	Fail(w, nil, err)
}

func describe(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		big *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return fault.New(fault.Invalid, "invalid JSON body: empty body")
	case errors.As(err, &syn):
		return fault.Wrap(fault.Invalid, err, fmt.Sprintf("invalid JSON body at byte %d: %v", syn.Offset, syn))
	case errors.As(err, &typ):
		return fault.Wrap(fault.Invalid, err,
			fmt.Sprintf("invalid JSON body: field %q must be %s, not %s", typ.Field, typ.Type, typ.Value))
	case errors.As(err, &big):
		return fault.Wrap(fault.TooLarge, ErrBodyTooLarge,
			fmt.Sprintf("%v: the body is larger than %d bytes", ErrBodyTooLarge, big.Limit))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fault.Wrap(fault.Timeout, err, fmt.Sprintf("request body arrived too slowly: %v", err))
	}
	return fault.Wrap(fault.Invalid, err, fmt.Sprintf("invalid JSON body: %v", err))
}

// IntQuery reads the integer query parameter name (absent or blank: def).
// A value that is not an integer is answered 400 here, and ok is false.
func IntQuery(w http.ResponseWriter, r *http.Request, name string, def int) (n int, ok bool) {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		Fail(w, nil, fault.New(fault.Invalid, name+" must be an integer, got "+strconv.Quote(textcut.Head(v, 40))))
		return 0, false
	}
	return n, true
}
