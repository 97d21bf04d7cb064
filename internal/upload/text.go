package upload

import (
	"archive/zip"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/ocr"
)

// Extractor is what Text needs of internal/ocr for PDFs and images.
type Extractor interface {
	Extract(ctx context.Context, path string) (*ocr.Result, error)
}

// MaxTextBytes bounds what is read of one text file or Word document's
// text.
const MaxTextBytes = 4 << 20

// ErrNoExtractor is returned for a PDF or image when no OCR extractor is
// configured.
var ErrNoExtractor = errors.New("text extraction from PDFs and images needs OCR, which is not configured")

// Text returns the text of the stored file at path of the given kind, and
// for PDFs and images the OCR result with its pages (nil otherwise). Text
// files are decoded as UTF-8 or GB18030 (a .tex file loses its %-comment
// lines); a .docx gives the text of its paragraphs; a PDF or an image goes
// to x (nil: ErrNoExtractor).
func Text(ctx context.Context, x Extractor, path, kind string) (string, *ocr.Result, error) {
	switch kind {
	case KindText, KindCSV:
		data, err := readBounded(path)
		if err != nil {
			return "", nil, err
		}
		text := DecodeText(data)
		if strings.EqualFold(filepath.Ext(path), ".tex") {
			text = dropTeXComments(text)
		}
		return text, nil, nil
	case KindDOCX:
		text, err := DocxText(path)
		return text, nil, err
	case KindPDF, KindImage:
		if x == nil {
			return "", nil, ErrNoExtractor
		}
		res, err := x.Extract(ctx, path)
		if err != nil {
			return "", nil, err
		}
		return res.Text(), res, nil
	}
	return "", nil, fault.Newf(fault.Unsupported, "%s: no text can be read from a %s file", filepath.Base(path), kind)
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTextBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxTextBytes {
		return nil, fault.Newf(fault.TooLarge, "%s: text files are read up to %d MiB", filepath.Base(path), MaxTextBytes>>20)
	}
	return data, nil
}

func dropTeXComments(s string) string {
	lines := strings.Split(s, "\n")
	out := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "%") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// Bounds of a .docx: the compressed size of word/document.xml read, and
// the XML tokens walked.
const (
	maxDocxPart   = 32 << 20
	maxDocxTokens = 4_000_000
)

// DocxText returns the text of a Word .docx document: the text runs of
// word/document.xml, one line per paragraph, tabs and breaks kept. It reads
// the archive as a stream with bounds (part size, tokens, text), so a
// zip bomb fails instead of filling memory.
func DocxText(path string) (string, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return "", fault.Wrap(fault.Invalid, err, fmt.Sprintf("%s is not a readable .docx: %v", filepath.Base(path), err))
	}
	defer zr.Close()
	var doc *zip.File
	for _, f := range zr.File {
		if f.Name == "word/document.xml" {
			doc = f
			break
		}
	}
	if doc == nil {
		return "", fault.Newf(fault.Invalid, "%s is not a Word document (no word/document.xml)", filepath.Base(path))
	}
	tooLarge := fault.Newf(fault.TooLarge, "%s: the document's text is too large to read", filepath.Base(path))
	if doc.UncompressedSize64 > maxDocxPart {
		return "", tooLarge
	}
	rc, err := doc.Open()
	if err != nil {
		return "", fault.Wrap(fault.Invalid, err, fmt.Sprintf("%s: %v", filepath.Base(path), err))
	}
	defer rc.Close()
	dec := xml.NewDecoder(io.LimitReader(rc, maxDocxPart))
	var b strings.Builder
	inText := false
	for tokens := 0; ; tokens++ {
		if tokens > maxDocxTokens || b.Len() > MaxTextBytes {
			return "", tooLarge
		}
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fault.Wrap(fault.Invalid, err, fmt.Sprintf("%s: malformed document.xml: %v", filepath.Base(path), err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "t":
				inText = true
			case "tab":
				b.WriteByte('\t')
			case "br", "cr":
				b.WriteByte('\n')
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "t":
				inText = false
			case "p":
				b.WriteByte('\n')
			}
		case xml.CharData:
			if inText {
				b.Write(t)
			}
		}
	}
	return strings.TrimRight(b.String(), "\n"), nil
}
