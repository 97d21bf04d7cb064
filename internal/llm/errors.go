package llm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotConfigured is returned by every call when no provider is configured.
var ErrNotConfigured = errors.New("llm_not_configured")

// ErrTimeout is wrapped by the error of an attempt that ran out of its
// per-attempt timeout (Provider.Timeout). It does not wrap
// context.DeadlineExceeded: that is reserved for the caller's own context.
var ErrTimeout = errors.New("llm_timeout")

// ErrMalformedResponse is wrapped by the error of a 2xx answer that could not
// be used: invalid JSON, no choices, an "error" object, or a body over the
// size limit.
var ErrMalformedResponse = errors.New("llm_malformed_response")

// APIError is a non-2xx answer from a provider.
type APIError struct {
	Status   int    // HTTP status code
	Provider string // provider name
	// Body is the start of the answer's body (at most 1 KiB, valid UTF-8).
	Body string
	// RetryAfter is the server's Retry-After (or retry-after-ms), capped
	// at Options.MaxRetryAfter; 0 when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "llm: provider %q answered HTTP %d", e.Provider, e.Status)
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	return b.String()
}

// Retryable reports whether the status is one the gateway retries on the
// same target: 408, 409, 425, 429 or 5xx.
func (e *APIError) Retryable() bool { return retryableStatus(e.Status) }

func retryableStatus(code int) bool {
	switch code {
	case 408, 409, 425, 429:
		return true
	}
	return code >= 500 && code <= 599
}

// Error classes, as ErrorClass returns them: a small fixed set, for
// metrics labels.
const (
	ClassNotConfigured = "not_configured"
	ClassCanceled      = "canceled"  // the caller's context was cancelled
	ClassDeadline      = "deadline"  // the caller's deadline passed
	ClassTimeout       = "timeout"   // an attempt's own timeout (Provider.Timeout)
	ClassRateLimited   = "http_429"  // the last answer was a 429
	ClassHTTP4xx       = "http_4xx"  // another 4xx (a bad key, a bad request) or a 3xx
	ClassHTTP5xx       = "http_5xx"  // a 5xx
	ClassMalformed     = "malformed" // a 2xx answer that could not be used
	ClassStream        = "stream_broken"
	ClassConnection    = "connection" // the request could not be sent or the answer read (TLS included)
	ClassOther         = "other"      // anything else (a bad base URL, a request that cannot be encoded…)
)

// errStreamBroken is wrapped by the error of a stream that failed after its
// first piece was passed on.
var errStreamBroken = errors.New("streamed answer broke off")

// transportError marks an error of sending a request or reading its answer
// (ErrorClass "connection") without changing its text.
type transportError struct{ error }

func (e transportError) Unwrap() error { return e.error }

// ErrorClass names the kind of failure of a call's error ("" for nil). A
// chain that failed on every target is classed by its last target's
// error; the caller's own context ending wins over what the attempts saw.
func ErrorClass(err error) string {
	if err == nil {
		return ""
	}
	switch {
	case errors.Is(err, ErrNotConfigured):
		return ClassNotConfigured
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return ClassDeadline
	}
	if c, ok := err.(chainError); ok && len(c) > 0 {
		err = c[len(c)-1]
	}
	var apiErr *APIError
	switch {
	case errors.Is(err, errStreamBroken):
		return ClassStream
	case errors.As(err, &apiErr):
		switch {
		case apiErr.Status == 429:
			return ClassRateLimited
		case apiErr.Status >= 500:
			return ClassHTTP5xx
		}
		return ClassHTTP4xx
	case errors.Is(err, ErrTimeout):
		return ClassTimeout
	case errors.Is(err, ErrMalformedResponse):
		return ClassMalformed
	case errors.As(err, new(transportError)):
		return ClassConnection
	}
	return ClassOther
}

// chainError is the error of a call on which every target failed. It keeps
// each target's last error so that errors.Is and errors.As see them all.
type chainError []error

func (c chainError) Error() string {
	parts := make([]string, len(c))
	for i, e := range c {
		parts[i] = e.Error()
	}
	return fmt.Sprintf("llm: all %d providers failed: %s", len(c), strings.Join(parts, "; "))
}

func (c chainError) Unwrap() []error { return c }

// truncateUTF8 cuts s to at most n bytes on a rune boundary and makes it
// valid UTF-8.
func truncateUTF8(s string, n int) string {
	if len(s) > n {
		cut := n
		for cut > 0 && cut < len(s) && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
