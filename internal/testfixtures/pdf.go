package testfixtures

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"image"
	"strings"
)

// PDFPage is one page of a hand-written PDF: text lines in Helvetica
// (the text layer; Latin-1 text only) and/or one grayscale image filling
// the page's width.
type PDFPage struct {
	Lines []string
	Img   *image.Gray
}

// PDF returns a minimal, valid PDF (A4 pages), written by hand so tests
// need no PDF library.
func PDF(pages ...PDFPage) []byte {
	var objs [][]byte // objs[i] is object i+1
	add := func(b []byte) int { objs = append(objs, b); return len(objs) }
	stream := func(dict string, data []byte) []byte {
		return fmt.Appendf(nil, "<< %s /Length %d >>\nstream\n%s\nendstream", dict, len(data), data)
	}
	catalog := add(nil)
	pagesObj := add(nil)
	fontObj := add([]byte("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"))
	var kids []string
	for _, pg := range pages {
		var content bytes.Buffer
		res := fmt.Sprintf("/Font << /F1 %d 0 R >>", fontObj)
		if pg.Img != nil {
			var z bytes.Buffer
			zw := zlib.NewWriter(&z)
			b := pg.Img.Bounds()
			for y := b.Min.Y; y < b.Max.Y; y++ {
				zw.Write(pg.Img.Pix[pg.Img.PixOffset(b.Min.X, y) : pg.Img.PixOffset(b.Min.X, y)+b.Dx()])
			}
			zw.Close()
			im := add(stream(fmt.Sprintf("/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode", b.Dx(), b.Dy()), z.Bytes()))
			res += fmt.Sprintf(" /XObject << /Im1 %d 0 R >>", im)
			wPt := 595.0 - 72
			hPt := wPt * float64(b.Dy()) / float64(b.Dx())
			fmt.Fprintf(&content, "q %.2f 0 0 %.2f 36 %.2f cm /Im1 Do Q\n", wPt, hPt, 806-hPt)
		}
		if len(pg.Lines) > 0 {
			content.WriteString("BT /F1 14 Tf 20 TL 72 760 Td\n")
			for _, l := range pg.Lines {
				l = strings.NewReplacer(`\`, `\\`, `(`, `\(`, `)`, `\)`).Replace(l)
				fmt.Fprintf(&content, "(%s) Tj T*\n", l)
			}
			content.WriteString("ET\n")
		}
		c := add(stream("", content.Bytes()))
		p := add(fmt.Appendf(nil, "<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Resources << %s >> /Contents %d 0 R >>", pagesObj, res, c))
		kids = append(kids, fmt.Sprintf("%d 0 R", p))
	}
	objs[catalog-1] = fmt.Appendf(nil, "<< /Type /Catalog /Pages %d 0 R >>", pagesObj)
	objs[pagesObj-1] = fmt.Appendf(nil, "<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(kids))

	var out bytes.Buffer
	out.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = out.Len()
		fmt.Fprintf(&out, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := out.Len()
	fmt.Fprintf(&out, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&out, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&out, "trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, catalog, xref)
	return out.Bytes()
}
