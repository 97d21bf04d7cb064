package jobs

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// BenchmarkCreate: one job record made durable, synced file by file
// against the journal, one caller at a time and several at once (the
// journal's group commit shares a sync between them). LECTERN_BENCH_DIR
// picks the filesystem (the default temp dir is this machine's disk).
func BenchmarkCreate(b *testing.B) {
	rec := map[string]any{"status": "queued", "request": map[string]any{"messages": []any{map[string]any{"role": "user", "content": "讲一下牛顿第二定律"}}}}
	for _, mode := range []string{"synced", "journal", "resident"} {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/callers=%d", mode, par), func(b *testing.B) {
				dir := b.TempDir()
				if d := os.Getenv("LECTERN_BENCH_DIR"); d != "" {
					dir, _ = os.MkdirTemp(d, "create")
					b.Cleanup(func() { os.RemoveAll(dir) })
				}
				s := NewStore(dir)
				switch mode {
				case "journal":
					s = NewJournaledStore(dir, JournalOptions{})
				case "resident":
					s = NewResidentStore(dir, JournalOptions{})
				}
				defer s.Close()
				s.Scan() // open the journal outside the timing
				var n atomic.Int64
				b.SetParallelism(par)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						id := fmt.Sprintf("job_%d", i)
						claim := filepath.Join(dir, "request_index", id+".txt")
						os.MkdirAll(filepath.Dir(claim), 0o755)
						os.WriteFile(claim, []byte(id), 0o644)
						if err := s.Create(id, rec, File{Path: claim, Data: []byte(id)}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkJournalAppend: the journal's own cost per record.
func BenchmarkJournalAppend(b *testing.B) {
	dir := b.TempDir()
	j, err := OpenJournal(dir, func([]byte) error { return nil }, JournalOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	payload := make([]byte, 600)
	j.Append(payload)
	b.ResetTimer()
	for range b.N {
		if err := j.Append(payload); err != nil {
			b.Fatal(err)
		}
	}
}
