//go:build linux

package tenancy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// fileWake tells the store watcher that the store's files were written:
// an inotify watch on the store's directory, read through the runtime's
// poller, so the watcher sleeps without a timer while nothing happens. A
// commit by any process writes the WAL file (the database file, when it
// checkpoints), so every change is announced; a spurious one (a
// checkpoint, this process's own commit) only costs a look.
type fileWake struct {
	f     *os.File
	names map[string]bool // the database's and its WAL's file names
	buf   []byte
}

// openFileWake watches the directory of the database at dbPath (a
// directory watch still sees a WAL file that is deleted and made again).
// It refuses a network or FUSE file system, whose writes by another host
// or daemon inotify does not see: the watcher polls there.
func openFileWake(dbPath string) (*fileWake, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(dbPath), &fs); err != nil {
		return nil, err
	}
	if name := remoteFS(int64(fs.Type)); name != "" {
		return nil, fmt.Errorf("the store is on %s: other hosts' writes raise no file events here", name)
	}
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	const mask = syscall.IN_MODIFY | syscall.IN_CREATE | syscall.IN_MOVED_TO | syscall.IN_CLOSE_WRITE
	if _, err := syscall.InotifyAddWatch(fd, filepath.Dir(dbPath), mask); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	base := filepath.Base(dbPath)
	return &fileWake{f: os.NewFile(uintptr(fd), "inotify:"+dbPath),
		names: map[string]bool{base: true, base + "-wal": true}, buf: make([]byte, 4096)}, nil
}

// remoteFS names the file systems (statfs magic numbers, linux/magic.h)
// whose files may be changed elsewhere than in this kernel; "" for others.
func remoteFS(magic int64) string {
	switch uint32(magic) {
	case 0x6969:
		return "NFS"
	case 0xff534d42, 0xfe534d42, 0x517b:
		return "SMB"
	case 0x65735546:
		return "FUSE"
	case 0x01021997:
		return "9p"
	case 0x00c36400:
		return "CephFS"
	case 0x0bd00bd0:
		return "Lustre"
	case 0x47504653:
		return "GPFS"
	}
	return ""
}

// errWakeClosed is wait's answer once the fileWake is closed.
var errWakeClosed = errors.New("file wake closed")

// wait blocks until one of the store's files is written (or the kernel's
// queue overflowed, which may have hidden one). Only one goroutine may
// wait at a time. After Close it returns errWakeClosed.
func (w *fileWake) wait() error {
	for {
		n, err := w.f.Read(w.buf)
		if errors.Is(err, os.ErrClosed) {
			return errWakeClosed
		}
		if err != nil {
			return err
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			mask := binary.NativeEndian.Uint32(w.buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(w.buf[off+12:]))
			start := off + syscall.SizeofInotifyEvent
			off = start + nameLen
			if mask&syscall.IN_Q_OVERFLOW != 0 {
				return nil
			}
			if off > n {
				break
			}
			if w.names[strings.TrimRight(string(w.buf[start:off]), "\x00")] {
				return nil
			}
		}
	}
}

// Close ends the watch; a wait in progress returns errWakeClosed.
func (w *fileWake) Close() error { return w.f.Close() }
