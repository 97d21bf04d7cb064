package ocr

import (
	"bufio"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// The image formats sniff names, decoded by the standard library and
// golang.org/x/image.

// codecs are the decoders of each image kind sniff names.
var codecs = map[string]struct {
	decode func(io.Reader) (image.Image, error)
	config func(io.Reader) (image.Config, error)
}{
	"png":  {png.Decode, png.DecodeConfig},
	"jpeg": {jpeg.Decode, jpeg.DecodeConfig},
	"webp": {webp.Decode, webp.DecodeConfig},
	"tiff": {tiff.Decode, tiff.DecodeConfig},
	"bmp":  {bmp.Decode, bmp.DecodeConfig},
}

// decodeConfig reads the size of an image of kind.
func decodeConfig(r io.Reader, kind string) (image.Config, error) {
	c, ok := codecs[kind]
	if !ok {
		return image.Config{}, fmt.Errorf("unknown image kind %q", kind)
	}
	return c.config(bufio.NewReader(r))
}

// decodeImage decodes an image of kind.
func decodeImage(r io.Reader, kind string) (image.Image, error) {
	c, ok := codecs[kind]
	if !ok {
		return nil, fmt.Errorf("unknown image kind %q", kind)
	}
	return c.decode(r)
}
