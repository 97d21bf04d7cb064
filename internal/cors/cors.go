// Package cors answers cross-origin requests the way the predecessor did
// (Starlette's CORSMiddleware configured from CORS_ORIGINS): its teacher
// and student web apps are deployed on their own origins and call the API
// from the browser.
//
// With "*" in the list every origin is allowed without credentials
// (Access-Control-Allow-Origin: *); otherwise only the listed origins are,
// each echoed back with credentials allowed and Vary: Origin.
package cors

import (
	"net/http"
	"slices"
	"strings"
)

// Methods and Headers are what the API's routes accept; a preflight
// answers with them.
const (
	Methods = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
	Headers = "Accept, Accept-Language, Authorization, Cache-Control, Content-Language, Content-Type, " +
		"Idempotency-Key, Last-Event-ID, X-Request-ID, X-Requested-With"
	// exposed are the response headers a page may read.
	exposed = "Content-Disposition, Retry-After, X-Request-ID"
	maxAge  = "600"
)

// allowHeaders is Headers plus whatever else the preflight asks for, as
// the predecessor allowed every header: a web app sending a header of its
// own must keep working. Only header-name characters are echoed.
func allowHeaders(requested string) string {
	requested = strings.TrimSpace(requested)
	if requested == "" || len(requested) > 1024 {
		return Headers
	}
	for _, c := range requested {
		if !(c == '-' || c == ',' || c == ' ' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return Headers
		}
	}
	return Headers + ", " + requested
}

// Policy is a parsed CORS_ORIGINS.
type Policy struct {
	any     bool
	origins []string
}

// Parse reads a comma-separated origin list ("" means "*", the default).
func Parse(list string) Policy {
	var p Policy
	for o := range strings.SplitSeq(list, ",") {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		switch o {
		case "":
		case "*":
			p.any = true
		default:
			p.origins = append(p.origins, o)
		}
	}
	if len(p.origins) == 0 {
		p.any = true
	}
	return p
}

// AllowsAny reports whether every origin is allowed (no credentials).
func (p Policy) AllowsAny() bool { return p.any }

func (p Policy) allowed(origin string) bool {
	return p.any || slices.Contains(p.origins, origin)
}

// Wrap answers preflights itself and adds the CORS headers to every other
// response of next, errors included.
func (p Policy) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		if !p.any {
			h.Add("Vary", "Origin")
		}
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if !p.allowed(origin) {
			if preflight {
				http.Error(w, "Disallowed CORS origin", http.StatusBadRequest)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if p.any {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if preflight {
			h.Set("Access-Control-Allow-Methods", Methods)
			h.Set("Access-Control-Allow-Headers", allowHeaders(r.Header.Get("Access-Control-Request-Headers")))
			h.Set("Access-Control-Max-Age", maxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", exposed)
		next.ServeHTTP(w, r)
	})
}
