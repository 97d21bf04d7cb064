package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRewrite: a file rewritten again and again (a history index, a
// profile), round 64 files, by a temporary file renamed over it
// (WriteUnsynced) and by SwapUnsynced; in a quiet directory and a second
// after 20,000 files were deleted nearby (on ext4 without a journal every
// inode allocation then scans the recently freed ones).
//
//	go test -run '^$' -bench BenchmarkRewrite -benchtime 2000x ./internal/atomicfile/
func BenchmarkRewrite(b *testing.B) {
	for _, after := range []bool{false, true} {
		for _, m := range []struct {
			name  string
			write func(string, []byte, os.FileMode) error
		}{{"temp+rename", WriteUnsynced}, {"swap", SwapUnsynced}} {
			b.Run(fmt.Sprintf("%s/after_mass_delete=%v", m.name, after), func(b *testing.B) {
				dir := b.TempDir()
				data := make([]byte, 1024)
				paths := make([]string, 64)
				for i := range paths {
					paths[i] = filepath.Join(dir, fmt.Sprint("f", i, ".json"))
					for range 2 { // the file and, for swap, its spare
						if err := m.write(paths[i], data, 0o644); err != nil {
							b.Fatal(err)
						}
					}
				}
				if after {
					massDelete(b, filepath.Join(dir, "deleted"), 20000)
				}
				b.ResetTimer()
				for i := range b.N {
					if err := m.write(paths[i%len(paths)], data, 0o644); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// massDelete creates n small files in dir and deletes them, then waits a
// second (ext4 counts an inode as recently freed from the next second).
func massDelete(b *testing.B, dir string, n int) {
	b.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
}

// BenchmarkCreate: creating a small new file (what a chat job still does
// for its request's claim and its sealed record), in a quiet directory
// and a second after 20,000 files were deleted nearby.
//
//	go test -run '^$' -bench BenchmarkCreate -benchtime 2000x ./internal/atomicfile/
func BenchmarkCreate(b *testing.B) {
	for _, after := range []bool{false, true} {
		b.Run(fmt.Sprintf("after_mass_delete=%v", after), func(b *testing.B) {
			dir := b.TempDir()
			if after {
				massDelete(b, filepath.Join(dir, "deleted"), 20000)
			}
			data := make([]byte, 300)
			b.ResetTimer()
			for i := range b.N {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprint("new", i)), data, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
