package server

import (
	"net/http"

	"github.com/lectern/lectern/internal/apidoc"
)

// apidocRoutes serves the API description at the root: GET /openapi.json
// (the OpenAPI 3.1 document of every route) and GET /docs (the page made
// from it). Both are public (they hold no data) and are served for the
// whole server, not per tenant: the document describes the tenant routes
// under /t/{tenant_id} itself. Every other request goes to next.
func (s *Server) apidocRoutes(next http.Handler) http.Handler {
	return apidoc.NewDocs(s.log).Wrap(next)
}
