// Command profserve is Lectern's handler behind the same http.Server
// settings as `lectern serve`, plus net/http/pprof on a second address, so
// that a load run can be profiled (docs/benchmarks.md shows how). It keeps
// everything under -root and takes the admin key from -key.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"time"

	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	pprofAddr := flag.String("pprof", "127.0.0.1:6060", "address of /debug/pprof/")
	root := flag.String("root", "", "absolute directory for the default tenant and the tenant store")
	key := flag.String("key", "bench-admin-key", "admin key")
	flag.Parse()
	if !filepath.IsAbs(*root) {
		log.Fatal("-root must be an absolute directory")
	}
	srv, err := server.New(context.Background(), server.Config{
		DataDir:      filepath.Join(*root, "default", "data"),
		UploadsDir:   filepath.Join(*root, "default", "uploads"),
		TenantDBPath: filepath.Join(*root, "system", "tenants.sqlite3"),
		AdminKey:     *key,
		Global:       limits.Config{LLMTotal: 8, LLMStudent: 8, LLMTeacher: 8, OCR: 4},
		ChatWorkers:  4,
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go func() { log.Fatal(http.ListenAndServe(*pprofAddr, mux)) }()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Printf("profserve listening on http://%s (pprof on http://%s/debug/pprof/)\n", ln.Addr(), *pprofAddr)
	log.Fatal(httpSrv.Serve(ln))
}
