// Command bare is the baseline for Lectern's dispatch benchmark: a plain
// net/http server that answers GET /health exactly as a Lectern tenant does
// (same body, same headers, same http.Server timeouts), with no dispatcher
// or registry in front. See bench/tenancy.sh and docs/benchmarks.md.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	body := flag.String("body", "", "a file whose bytes GET /body answers as JSON (with Content-Length): the baseline of a cached read such as /t/t1/exams")
	flag.Parse()
	mux := http.NewServeMux()
	if *body != "" {
		data, err := os.ReadFile(*body)
		if err != nil {
			log.Fatal(err)
		}
		mux.HandleFunc("GET /body", func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", "application/json")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data)
		})
	}
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"status":"ok","llm":"not_configured","hint":"set LLM_BASE_URL, LLM_API_KEY and LLM_MODEL (or LLM_PROVIDERS_FILE) to enable chat"}`)) // the same body as Lectern without an LLM
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Printf("bare listening on http://%s\n", ln.Addr())
	log.Fatal(srv.Serve(ln))
}
