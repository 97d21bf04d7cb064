// Package httpjson encodes and decodes the JSON bodies of Lectern's HTTP
// APIs, and writes errors in the one shape every client expects:
// {"detail": ...}.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
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

// WriteRaw sends an already encoded JSON body.
func WriteRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}

// Error sends {"detail": detail}. detail is usually a string; some
// endpoints of the predecessor put an object there, and so may callers.
func Error(w http.ResponseWriter, status int, detail any) {
	Write(w, status, map[string]any{"detail": detail})
}

// Decode reads one JSON value from r's body into v. Unknown fields,
// trailing data and bodies over MaxBody are errors; the message is fit to
// show the client.
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describe(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON body: unexpected data after the JSON value")
	}
	return nil
}

// ErrBodyTooLarge is wrapped by Decode's error for a body over its bound.
var ErrBodyTooLarge = errors.New("request body too large")

// DecodeFailed answers a request whose body Decode refused: 413 for a body
// over its bound, 408 for one that arrived too slowly (see package
// bodydeadline), else 400, with Decode's message as the detail.
func DecodeFailed(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		status = http.StatusRequestTimeout
	}
	Error(w, status, err.Error())
}

func describe(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		big *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("invalid JSON body: empty body")
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON body at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return fmt.Errorf("invalid JSON body: field %q must be %s, not %s", typ.Field, typ.Type, typ.Value)
	case errors.As(err, &big):
		return fmt.Errorf("%w: the body is larger than %d bytes", ErrBodyTooLarge, big.Limit)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("request body arrived too slowly: %w", err)
	}
	return fmt.Errorf("invalid JSON body: %v", err)
}
