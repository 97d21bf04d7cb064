package jobs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data (not its timestamps): for a zero-filled
// segment overwritten in place, no filesystem journal commit.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func isSyncUnsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP)
}

// syncVouched makes what a retired segment's records vouch for durable:
// one syncfs(2) per filesystem holding them (their data and every
// directory entry), instead of an fsync per file and directory, which
// for a segment of a thousand jobs is thousands of journal commits.
func syncVouched(files []string) error {
	if len(files) == 0 {
		return nil
	}
	dirs := map[string]bool{}
	onDev := map[uint64]string{} // a directory on each filesystem
	for _, p := range files {
		d := filepath.Dir(p)
		if dirs[d] {
			continue
		}
		dirs[d] = true
		var st unix.Stat_t
		err := unix.Stat(d, &st)
		for errors.Is(err, unix.ENOENT) && filepath.Dir(d) != d {
			d = filepath.Dir(d) // not made yet, or deleted since: its filesystem all the same
			err = unix.Stat(d, &st)
		}
		if err != nil {
			return syncFiles(files)
		}
		if _, ok := onDev[st.Dev]; !ok {
			onDev[st.Dev] = d
		}
	}
	for _, d := range onDev {
		f, err := os.Open(d)
		if err != nil {
			return syncFiles(files)
		}
		err = unix.Syncfs(int(f.Fd()))
		f.Close()
		if err != nil {
			return syncFiles(files)
		}
	}
	return nil
}
