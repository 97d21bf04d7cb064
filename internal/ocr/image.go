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

// decodeConfig reads the size of an image of kind.
func decodeConfig(r io.Reader, kind string) (image.Config, error) {
	br := bufio.NewReader(r)
	switch kind {
	case "png":
		return png.DecodeConfig(br)
	case "jpeg":
		return jpeg.DecodeConfig(br)
	case "webp":
		return webp.DecodeConfig(br)
	case "tiff":
		return tiff.DecodeConfig(br)
	case "bmp":
		return bmp.DecodeConfig(br)
	}
	return image.Config{}, fmt.Errorf("unknown image kind %q", kind)
}

// decodeImage decodes an image of kind.
func decodeImage(r io.Reader, kind string) (image.Image, error) {
	switch kind {
	case "png":
		return png.Decode(r)
	case "jpeg":
		return jpeg.Decode(r)
	case "webp":
		return webp.Decode(r)
	case "tiff":
		return tiff.Decode(r)
	case "bmp":
		return bmp.Decode(r)
	}
	return nil, fmt.Errorf("unknown image kind %q", kind)
}
