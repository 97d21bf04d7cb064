package mcpserver

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lectern/lectern/internal/caller"
)

// BenchmarkMCPToolsCall measures tools/call of exam.get through the SDK's
// client over real HTTP (one client session; serial, and from 8×GOMAXPROCS goroutines).
//
//	go test -run '^$' -bench BenchmarkMCPToolsCall -benchtime 3s ./internal/mcpserver/
func BenchmarkMCPToolsCall(b *testing.B) {
	reg := tenantRegistry(b, "EX1", students1)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	url := serve(b, as(teacherT1, New(Config{Registry: fixed(reg), Resolver: caller.Resolver{Tenant: "a"}, Enforcing: true, Logger: quiet})))
	s := mustConnect(b, url)
	params := &mcp.CallToolParams{Name: "exam.get", Arguments: map[string]any{"exam_id": "EX1"}}
	call := func(b *testing.B) bool {
		res, err := s.CallTool(context.Background(), params)
		if err != nil || res.IsError {
			b.Errorf("call: %v %+v", err, res) // Errorf: RunParallel's goroutines may not Fatal
			return false
		}
		return true
	}
	if !call(b) { // the exam is parsed and cached before timing
		return
	}

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !call(b) {
				return
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
	b.Run("parallel8", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() && call(b) {
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
}
