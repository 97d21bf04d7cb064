package scoresheet

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// maxZipEntries bounds the files of a workbook package. archive/zip keeps a
// header for every entry of the central directory, and a 64 MiB file can
// hold a million tiny ones, so the directory is counted first.
const maxZipEntries = 10000

// checkZipEntries counts the central directory's entries the way
// archive/zip will read them, and fails past maxZipEntries. It leaves
// malformed archives to zip.NewReader.
func checkZipEntries(r io.ReaderAt, size int64) error {
	const eocdLen = 22
	if size < eocdLen {
		return nil
	}
	n := min(size, eocdLen+65535)
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-n); err != nil && err != io.EOF {
		return nil
	}
	// The last end-of-directory record whose comment fits, as archive/zip
	// finds it.
	at := -1
	for i := len(buf) - eocdLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) == 0x06054b50 {
			if int(binary.LittleEndian.Uint16(buf[i+20:]))+eocdLen+i > len(buf) {
				return nil
			}
			at = i
			break
		}
	}
	if at < 0 {
		return nil
	}
	end := size - n + int64(at)
	e := buf[at:]
	records := uint64(binary.LittleEndian.Uint16(e[10:]))
	dirSize := uint64(binary.LittleEndian.Uint32(e[12:]))
	dirOffset := uint64(binary.LittleEndian.Uint32(e[16:]))
	if records == 0xffff || dirSize == 0xffff || dirOffset == 0xffffffff {
		if p, size64, offset64, ok := zip64End(r, end, size); ok {
			end, dirSize, dirOffset = p, size64, offset64
		}
	}
	// archive/zip starts at end-dirSize, or at dirOffset when a header is
	// there: count from both.
	for _, start := range []uint64{uint64(end) - dirSize, dirOffset} {
		if start >= uint64(size) {
			continue
		}
		if countEntries(r, int64(start), size) > maxZipEntries {
			return fmt.Errorf("%w: 工作簿包含超过 %d 个文件 (the workbook holds more than %d files)", ErrTooLarge, maxZipEntries, maxZipEntries)
		}
	}
	return nil
}

// zip64End reads the zip64 end-of-directory record that the locator before
// the end record at end names: its offset, the directory size and offset.
func zip64End(r io.ReaderAt, end, size int64) (p int64, dirSize, dirOffset uint64, ok bool) {
	var loc [20]byte
	if end < 20 {
		return 0, 0, 0, false
	}
	if _, err := r.ReadAt(loc[:], end-20); err != nil || binary.LittleEndian.Uint32(loc[:]) != 0x07064b50 ||
		binary.LittleEndian.Uint32(loc[16:]) != 1 {
		return 0, 0, 0, false
	}
	p = int64(binary.LittleEndian.Uint64(loc[8:]))
	var z [56]byte
	if p < 0 || p > size-56 {
		return 0, 0, 0, false
	}
	if _, err := r.ReadAt(z[:], p); err != nil || binary.LittleEndian.Uint32(z[:]) != 0x06064b50 {
		return 0, 0, 0, false
	}
	return p, binary.LittleEndian.Uint64(z[40:]), binary.LittleEndian.Uint64(z[48:]), true
}

// countEntries counts the central-directory headers from start, stopping
// past maxZipEntries.
func countEntries(r io.ReaderAt, start, size int64) int {
	br := bufio.NewReaderSize(io.NewSectionReader(r, start, size-start), 32<<10)
	var h [46]byte
	n := 0
	for n <= maxZipEntries {
		if _, err := io.ReadFull(br, h[:]); err != nil || binary.LittleEndian.Uint32(h[:]) != 0x02014b50 {
			break
		}
		skip := int(binary.LittleEndian.Uint16(h[28:])) + int(binary.LittleEndian.Uint16(h[30:])) + int(binary.LittleEndian.Uint16(h[32:]))
		if _, err := br.Discard(skip); err != nil {
			break
		}
		n++
	}
	return n
}

// partReader streams one unzipped part, failing with ErrTooLarge once the
// part grows past max bytes or one XML token past maxToken bytes (so an
// encoding/xml decoder, which buffers a whole token, stays small).
type partReader struct {
	rc       io.ReadCloser
	name     string
	max      int64
	maxToken int
	n        int64
	lex      xmlLexer
	err      error // the cap that tripped
}

func (p *partReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.rc.Read(b)
	if p.n += int64(n); p.n > p.max {
		zh, en := sizeText(p.max)
		p.err = fmt.Errorf("%w: 解压后的 %s 超过 %s (%s is larger than %s once unzipped)", ErrTooLarge, clip(p.name), zh, clip(p.name), en)
		return 0, p.err
	}
	if !p.lex.scan(b[:n], p.maxToken) {
		zh, en := sizeText(int64(p.maxToken))
		p.err = fmt.Errorf("%w: %s 中有一段 XML 超过 %s (an XML token of %s is longer than %s)", ErrTooLarge, clip(p.name), zh, clip(p.name), en)
		return 0, p.err
	}
	return n, err
}

func (p *partReader) Close() error { return p.rc.Close() }

// fail returns the cap that tripped, if one did, else err.
func (p *partReader) fail(err error) error {
	if p.err != nil {
		return p.err
	}
	return err
}

// xmlLexer follows an XML stream just enough to know how long the current
// token is (text, a tag, a comment, CDATA, a processing instruction or a
// directive), as encoding/xml will buffer it. It errs on the side of
// longer: it never ends a token before the decoder does.
type xmlLexer struct {
	state        uint8
	quote        byte
	depth        int
	prev1, prev2 byte // the bytes before the current one, inside a token
	n            int  // bytes of the current token so far
}

const (
	lxText     uint8 = iota
	lxLT             // after '<'
	lxBang           // after "<!"
	lxBangDash       // after "<!-"
	lxTag
	lxComment
	lxCDATA
	lxPI
	lxDirective
	lxDirLT         // '<' in a directive
	lxDirLTBang     // "<!" in a directive
	lxDirLTBangDash // "<!-" in a directive
	lxDirComment
)

// scan feeds b to the lexer; it reports false once a token is longer than
// max bytes.
func (l *xmlLexer) scan(b []byte, max int) bool {
	for _, c := range b {
		if l.n++; l.n > max {
			return false
		}
		p1, p2 := l.prev1, l.prev2
		l.prev2, l.prev1 = l.prev1, c
		switch l.state {
		case lxText:
			if c == '<' {
				l.state, l.n = lxLT, 1
			}
		case lxLT:
			switch c {
			case '!':
				l.state = lxBang
			case '?':
				l.state, l.prev1, l.prev2 = lxPI, 0, 0
			case '>':
				l.state, l.n = lxText, 0
			default:
				l.state, l.quote = lxTag, 0
			}
		case lxBang:
			switch c {
			case '-':
				l.state = lxBangDash
			case '[':
				l.state, l.prev1, l.prev2 = lxCDATA, 0, 0
			default:
				l.state, l.quote, l.depth = lxDirective, 0, 0
				l.directive(c)
			}
		case lxBangDash:
			if c == '-' {
				l.state, l.prev1, l.prev2 = lxComment, 0, 0
			} else {
				l.state, l.quote, l.depth = lxDirective, 0, 0
				l.directive(c)
			}
		case lxTag:
			switch {
			case l.quote != 0:
				if c == l.quote {
					l.quote = 0
				}
			case c == '"' || c == '\'':
				l.quote = c
			case c == '>':
				l.state, l.n = lxText, 0
			}
		case lxComment:
			if c == '>' && p1 == '-' && p2 == '-' {
				l.state, l.n = lxText, 0
			}
		case lxCDATA:
			if c == '>' && p1 == ']' && p2 == ']' {
				l.state, l.n = lxText, 0
			}
		case lxPI:
			if c == '>' && p1 == '?' {
				l.state, l.n = lxText, 0
			}
		case lxDirective:
			l.directive(c)
		case lxDirLT:
			if c == '!' {
				l.state = lxDirLTBang
			} else {
				l.nestDirective(c)
			}
		case lxDirLTBang:
			if c == '-' {
				l.state = lxDirLTBangDash
			} else {
				l.nestDirective(c)
			}
		case lxDirLTBangDash:
			if c == '-' {
				l.state, l.prev1, l.prev2 = lxDirComment, 0, 0
			} else {
				l.nestDirective(c)
			}
		case lxDirComment:
			if c == '>' && p1 == '-' && p2 == '-' {
				l.state = lxDirective
			}
		}
	}
	return true
}

// directive handles one byte of a directive (<!DOCTYPE …>), where quoted
// brackets do not nest and <!-- … --> is a comment.
// nestDirective: a '<' inside a directive that opens no comment opens a
// nested declaration; c is its first byte.
func (l *xmlLexer) nestDirective(c byte) {
	l.depth++
	l.state = lxDirective
	l.directive(c)
}

func (l *xmlLexer) directive(c byte) {
	switch {
	case l.quote != 0:
		if c == l.quote {
			l.quote = 0
		}
	case c == '"' || c == '\'':
		l.quote = c
	case c == '<':
		l.state = lxDirLT
	case c == '>':
		if l.depth == 0 {
			l.state, l.n = lxText, 0
		} else {
			l.depth--
		}
	}
}
