package ocr

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/fault"
)

// Tesseract is the Engine that runs the tesseract binary:
//
//	tesseract <image> stdout -l chi_sim+eng --psm 3 tsv
//
// and builds the text and the mean word confidence from the TSV. The zero
// value uses the defaults. Each call runs with OMP_THREAD_LIMIT=1 (unless
// Env sets it), since calls run in parallel and tesseract's own threads
// only oversubscribe the cores then.
type Tesseract struct {
	// Bin is the binary's name or path; default "tesseract".
	Bin string
	// Langs is the -l argument; default "chi_sim+eng".
	Langs string
	// PSM is the page segmentation mode; default 3 (fully automatic).
	PSM int
	// Timeout bounds one call; default 60 s.
	Timeout time.Duration
	// MaxOutput bounds the TSV read from one call; default 1 MiB.
	MaxOutput int64
	// Env is added to the environment of the subprocess.
	Env []string
}

// Name is "tesseract".
func (t *Tesseract) Name() string { return "tesseract" }

func (t *Tesseract) bin() string {
	if t.Bin != "" {
		return t.Bin
	}
	return "tesseract"
}

func (t *Tesseract) langs() string {
	if t.Langs != "" {
		return t.Langs
	}
	return DefaultLangs
}

// Image OCRs the image at path.
func (t *Tesseract) Image(ctx context.Context, path string) (Page, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Page{}, err
	}
	psm := t.PSM
	if psm == 0 {
		psm = DefaultPSM
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	maxOut := t.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxOutput
	}
	env := t.Env
	if !hasEnv(env, "OMP_THREAD_LIMIT") {
		env = append([]string{"OMP_THREAD_LIMIT=1"}, env...)
	}
	res, err := run(ctx, timeout, maxOut, env, t.bin(), abs, "stdout", "-l", t.langs(), "--psm", strconv.Itoa(psm), "tsv")
	if err != nil {
		if missingLanguage(res.stderr) {
			return Page{}, unavailable(err, "tesseract language data %q is missing", t.langs())
		}
		var fe *fault.Error
		if errors.As(err, &fe) || ctx.Err() != nil {
			return Page{}, err
		}
		return Page{}, fault.Wrap(fault.Upstream, err, map[string]any{
			"error":   "ocr_failed",
			"message": "tesseract could not read the image: " + lastLines(res.stderr, 3),
		})
	}
	return parseTSV(string(res.stdout))
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// missingLanguage tells from tesseract's stderr that a traineddata file is
// missing.
func missingLanguage(stderr string) bool {
	return strings.Contains(stderr, "Failed loading language") ||
		strings.Contains(stderr, "Error opening data file") ||
		strings.Contains(stderr, "Could not initialize tesseract")
}

// parseTSV builds a Page from tesseract's TSV: level page_num block_num
// par_num line_num word_num left top width height conf text. Words of a
// line are joined with a space, except between two CJK characters (where
// tesseract's word boundaries are not spaces in the text); lines with a
// newline, blocks with a blank line. Confidence is the mean word confidence
// weighted by the words' lengths.
func parseTSV(tsv string) (Page, error) {
	var (
		p                  Page
		b                  strings.Builder
		lastKey            [3]int
		lastRune           rune
		haveWord           bool
		confSum, confRunes float64
	)
	lines := strings.Split(tsv, "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "level") {
		return Page{}, fault.New(fault.Upstream, map[string]any{
			"error":   "ocr_failed",
			"message": "tesseract printed no TSV",
		})
	}
	for _, line := range lines[1:] {
		f := strings.SplitN(strings.TrimRight(line, "\r"), "\t", 12)
		if len(f) < 11 {
			continue
		}
		n := make([]int, 10)
		for i := range n {
			n[i], _ = strconv.Atoi(f[i])
		}
		switch n[0] {
		case 1: // page
			p.Width, p.Height = n[8], n[9]
			continue
		case 5: // word
		default:
			continue
		}
		text := ""
		if len(f) == 12 {
			text = strings.TrimSpace(f[11])
		}
		if text == "" {
			continue
		}
		key := [3]int{n[2], n[3], n[4]} // block, paragraph, line
		first, _ := utf8.DecodeRuneInString(text)
		switch {
		case !haveWord:
		case key[0] != lastKey[0]:
			b.WriteString("\n\n")
		case key != lastKey:
			b.WriteByte('\n')
		case !(isCJK(lastRune) && isCJK(first)):
			b.WriteByte(' ')
		}
		b.WriteString(text)
		haveWord, lastKey = true, key
		lastRune, _ = utf8.DecodeLastRuneInString(text)
		if conf, err := strconv.ParseFloat(f[10], 64); err == nil && conf >= 0 {
			w := float64(utf8.RuneCountInString(text))
			confSum += conf * w
			confRunes += w
		}
	}
	p.Text = b.String()
	if confRunes > 0 {
		p.Confidence = min(max(confSum/confRunes/100, 0), 1)
	}
	return p, nil
}

// isCJK reports whether r is written without spaces around it: Han, kana,
// hangul, CJK punctuation and fullwidth forms.
func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) ||
		(r >= 0x3000 && r <= 0x303f) || (r >= 0xff00 && r <= 0xffef)
}

// Available checks that the binaries in bins run and that tesseract has the
// language data of langs ("chi_sim+eng" when empty), with one
// `tesseract --list-langs`. The error wraps ErrUnavailable.
func Available(ctx context.Context, bins Bins, langs string) error {
	bins = bins.withDefaults()
	if langs == "" {
		langs = DefaultLangs
	}
	var missing []string
	for _, b := range []string{bins.Tesseract, bins.PdfToText, bins.PdfToPPM, bins.PdfInfo} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return unavailable(nil, "not found: %s", strings.Join(missing, ", "))
	}
	res, err := run(ctx, 30*time.Second, 64<<10, nil, bins.Tesseract, "--list-langs")
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return unavailable(err, "tesseract --list-langs failed")
	}
	// The list goes to stdout since tesseract 4, to stderr before.
	have := map[string]bool{}
	for _, l := range strings.Fields(string(res.stdout) + "\n" + res.stderr) {
		have[l] = true
	}
	var lack []string
	for _, l := range strings.Split(langs, "+") {
		if !have[l] {
			lack = append(lack, l)
		}
	}
	if len(lack) > 0 {
		return unavailable(nil, "tesseract language data missing: %s", strings.Join(lack, ", "))
	}
	return nil
}

var _ Engine = (*Tesseract)(nil)
