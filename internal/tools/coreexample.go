package tools

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/filelock"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/upload"
)

// Bounds of the core-example files.
const (
	maxExamplesCSV    = 8 << 20
	maxExampleText    = 1 << 20
	maxExampleFigure  = 20 << 20
	maxKPIDRunes      = 64
	maxCoreModelRunes = 2000
)

// coreColumns are examples.csv's columns, in the predecessor's order.
var coreColumns = []string{"example_id", "kp_id", "core_model", "difficulty", "source_ref", "stem_ref", "solution_ref",
	"model_ref", "discussion_ref", "variant_ref", "tags"}

// PDFRenderer draws a title and paragraphs as a PDF whose Chinese text
// shows (the practice service's typesetting).
type PDFRenderer func(ctx context.Context, title string, paragraphs []string) ([]byte, error)

// CoreExampleTools are core_example.search, core_example.register and
// core_example.render, for teachers, over DATA_DIR/core_examples/:
//
//	examples.csv                      one row per example (coreColumns)
//	stems|solutions|models|discussions|variants/<example_id>.md
//	assets/<example_id>.<ext>         its figure
//	pdf/core_example_<example_id>.pdf its rendered PDF
//
// The refs in examples.csv are relative to DATA_DIR, which is how
// assignment generation reads core_examples/stems/<id>.md and
// variants/<id>.md. render draws with render (nil: core_example.render
// answers 503 pdf_unavailable). dataDir is the tenant's DATA_DIR;
// uploadsDir its UPLOADS_DIR, where files to register may come from.
func CoreExampleTools(dataDir, uploadsDir string, render PDFRenderer) []Tool {
	ce := &coreExamples{dir: layout.Tenant{DataDir: dataDir}.CoreExamples(), dataDir: dataDir,
		files: fileRoots{dataDir: dataDir, uploadsDir: uploadsDir}, render: render}
	fileArg := func(what string) map[string]any {
		return str(what + "文件路径（POST /upload 上传的 uploads/…，或 lessons/、core_examples/ 下的文件）")
	}
	return []Tool{
		{
			Name:        "core_example.search",
			Description: "查询核心例题库：按知识点 kp_id 或例题编号 example_id 筛选；都不给时列出全部。Search the core examples.",
			Parameters: object(map[string]any{
				"kp_id":      str("知识点编号"),
				"example_id": str("例题编号，如 CE001"),
			}),
			Rule: policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				rows, err := ce.read()
				if err != nil {
					return nil, err
				}
				kp, id := ArgString(args, "kp_id"), ArgString(args, "example_id")
				out := []map[string]string{}
				for _, r := range rows {
					if (kp == "" || r["kp_id"] == kp) && (id == "" || r["example_id"] == id) {
						out = append(out, r)
					}
				}
				return map[string]any{"ok": true, "examples": out}, nil
			},
		},
		{
			Name: "core_example.register",
			Description: "登记一道核心例题：必须给出 example_id、kp_id、core_model（核心模型）。题干、解答可直接给文字（stem_text、solution_text），" +
				"或给已上传文件的路径；也可从课堂采集的例题导入（from_lesson + lesson_example_id）。同一编号再次登记会替换原记录。" +
				"Register a core example.",
			Parameters: object(map[string]any{
				"example_id":        str("例题编号，如 CE001（字母、数字、_-.）"),
				"kp_id":             str("知识点编号"),
				"core_model":        str("核心模型（一句话概括解题模型）"),
				"difficulty":        str("难度 basic / medium / advanced，默认 medium"),
				"source_ref":        str("出处（课堂、考试、讲义）"),
				"tags":              str("标签"),
				"stem_text":         str("题干文字（Markdown）"),
				"solution_text":     str("标准解答文字（Markdown）"),
				"stem_file":         fileArg("题干 Markdown "),
				"solution_file":     fileArg("解答 Markdown "),
				"model_file":        fileArg("核心模型 Markdown "),
				"figure_file":       fileArg("配图（图片）"),
				"discussion_file":   fileArg("讨论要点 Markdown "),
				"variant_file":      fileArg("变式模板（每行 name = value）"),
				"from_lesson":       str("课堂编号：从该课堂的 examples.csv 导入题干"),
				"lesson_example_id": str("课堂例题编号（与 from_lesson 一起使用），如 E003"),
				"lesson_figure":     str("课堂材料中的配图文件名（与 from_lesson 一起使用）"),
			}, "example_id", "kp_id", "core_model"),
			Rule: policy.Teacher,
			Run:  ce.register,
		},
		{
			Name: "core_example.render",
			Description: "把一道核心例题的题干排版成 PDF（讲义或讲评用），返回文件位置。" +
				"Render a core example's PDF.",
			Parameters: object(map[string]any{"example_id": str("例题编号")}, "example_id"),
			Rule:       policy.Teacher,
			Run:        ce.renderPDF,
		},
	}
}

type coreExamples struct {
	dir, dataDir string
	files        fileRoots
	render       PDFRenderer
}

func (ce *coreExamples) csvPath() string { return filepath.Join(ce.dir, "examples.csv") }

// read returns examples.csv's rows (no file: none). Rows keep every
// column of the file, known or not.
func (ce *coreExamples) read() ([]map[string]string, error) {
	rows, _, err := ce.readWithHeader()
	return rows, err
}

func (ce *coreExamples) readWithHeader() ([]map[string]string, []string, error) {
	f, err := os.Open(ce.csvPath())
	if errors.Is(err, fs.ErrNotExist) {
		return []map[string]string{}, nil, nil
	}
	if err != nil {
		return nil, nil, fault.Wrap(fault.Internal, err, "read core examples failed")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxExamplesCSV+1))
	if err != nil {
		return nil, nil, fault.Wrap(fault.Internal, err, "read core examples failed")
	}
	if len(data) > maxExamplesCSV {
		return nil, nil, fault.Newf(fault.TooLarge, "core_examples/examples.csv is larger than %d MiB", maxExamplesCSV>>20)
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	header, err := r.Read()
	if err != nil {
		return []map[string]string{}, nil, nil
	}
	rows := []map[string]string{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			continue
		}
		row := make(map[string]string, len(header))
		for i, h := range header {
			if i < len(rec) {
				row[h] = rec[i]
			} else {
				row[h] = ""
			}
		}
		rows = append(rows, row)
	}
	return rows, header, nil
}

// lock takes the tenant's core-example write lock (a file lock, so that
// every registry of the tenant, and every process, shares it), blocking:
// a write is a few small files.
func (ce *coreExamples) lock() (func(), error) {
	if err := os.MkdirAll(ce.dir, 0o755); err != nil {
		return nil, err
	}
	return filelock.LockPath(filepath.Join(ce.dir, ".examples.lock"), os.O_RDWR|os.O_CREATE, 0o644)
}

func (ce *coreExamples) register(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
	id, kp, model := ArgString(args, "example_id"), ArgString(args, "kp_id"), ArgString(args, "core_model")
	if !exams.ValidID(id) {
		return nil, fault.New(fault.Invalid, map[string]any{"error": "invalid_example_id", "example_id": id})
	}
	if kp == "" || !plainText(kp, maxKPIDRunes) || strings.ContainsAny(kp, `/\`) {
		return nil, fault.New(fault.Invalid, map[string]any{"error": "invalid_kp_id", "kp_id": kp})
	}
	if model == "" || utf8.RuneCountInString(model) > maxCoreModelRunes {
		return nil, fault.New(fault.Invalid, map[string]any{"error": "missing_core_model"})
	}
	difficulty := ArgString(args, "difficulty")
	if difficulty == "" {
		difficulty = "medium"
	}
	for _, k := range []string{"difficulty", "source_ref", "tags"} {
		if v := ArgString(args, k); !plainText(v, 500) {
			return nil, fault.Newf(fault.Invalid, "invalid %s", k)
		}
	}

	// Every input is read before anything is written.
	texts := map[string]string{} // folder → content
	readFile := func(key string) (string, error) {
		ref := ArgString(args, key)
		if ref == "" {
			return "", nil
		}
		p, err := ce.files.resolve(ref)
		if err != nil {
			return "", fault.New(fault.Invalid, map[string]any{"error": key + "_not_found_or_not_allowed", key: ref})
		}
		text, ok := readText(p, maxExampleText)
		if !ok {
			return "", fault.Newf(fault.Invalid, "%s: not a text file of at most %d KiB", key, maxExampleText>>10)
		}
		return text, nil
	}
	for _, f := range []struct{ key, textKey, folder string }{
		{"stem_file", "stem_text", "stems"}, {"solution_file", "solution_text", "solutions"},
		{"model_file", "", "models"}, {"discussion_file", "", "discussions"}, {"variant_file", "", "variants"},
	} {
		content, err := readFile(f.key)
		if err != nil {
			return nil, err
		}
		if f.textKey != "" {
			if t := ArgString(args, f.textKey); t != "" {
				if len(t) > maxExampleText {
					return nil, fault.Newf(fault.TooLarge, "%s is too long", f.textKey)
				}
				content = t
			}
		}
		if content != "" {
			texts[f.folder] = content
		}
	}
	var figure string // a real path to copy
	if lesson := ArgString(args, "from_lesson"); lesson != "" {
		if !exams.ValidID(lesson) {
			return nil, fault.New(fault.Invalid, map[string]any{"error": "invalid_from_lesson", "from_lesson": lesson})
		}
		if exID := ArgString(args, "lesson_example_id"); exID != "" {
			stem, err := ce.lessonExample(lesson, exID)
			if err != nil {
				return nil, err
			}
			texts["stems"] = stem
		}
		if name := ArgString(args, "lesson_figure"); name != "" {
			p, err := ce.files.resolve(filepath.Join(layout.Relative().Lessons(), lesson, "sources", filepath.Base(name)))
			if err != nil {
				return nil, fault.New(fault.Invalid, map[string]any{"error": "lesson_figure_not_found", "lesson_figure": name})
			}
			figure = p
		}
	}
	if ref := ArgString(args, "figure_file"); ref != "" {
		p, err := ce.files.resolve(ref)
		if err != nil {
			return nil, fault.New(fault.Invalid, map[string]any{"error": "figure_file_not_found_or_not_allowed", "figure_file": ref})
		}
		figure = p
	}
	figExt := ""
	if figure != "" {
		h, err := head(figure)
		if err != nil || !upload.Sniff(figure, h).Image {
			return nil, fault.New(fault.Invalid, map[string]any{"error": "figure_not_an_image"})
		}
		if figExt = strings.ToLower(filepath.Ext(figure)); figExt == "" || !plainText(figExt, 8) {
			figExt = ".png"
		}
	}
	// What is not given keeps the file an earlier registration wrote (the
	// predecessor overwrote it with a placeholder), else gets one.
	placeholders := map[string]string{
		"stems":       "[待补充题干]",
		"solutions":   "[待补充解答]",
		"discussions": "Standard Method:\n- \nCore Idea:\n- \nCore Model:\n- " + model + "\nTypical Pitfalls:\n- ",
	}
	for folder, text := range placeholders {
		if _, ok := texts[folder]; !ok && !exists(filepath.Join(ce.dir, folder, id+".md")) {
			texts[folder] = text
		}
	}
	if _, ok := texts["models"]; !ok {
		texts["models"] = model
	}

	unlock, err := ce.lock()
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "register core example failed")
	}
	defer unlock()
	failed := func(err error) error { return fault.Wrap(fault.Internal, err, "register core example failed") }
	ref := func(folder string) string { return "core_examples/" + folder + "/" + id + ".md" }
	if figure != "" {
		asset := filepath.Join(ce.dir, "assets", id+figExt)
		if err := os.MkdirAll(filepath.Dir(asset), 0o755); err != nil {
			return nil, failed(err)
		}
		tmp := asset + ".tmp-" + randomHex(4)
		if err := copyFile(tmp, figure, maxExampleFigure); err != nil {
			os.Remove(tmp)
			if errors.Is(err, errTooLarge) {
				return nil, fault.Newf(fault.TooLarge, "the figure may have at most %d MiB", maxExampleFigure>>20)
			}
			return nil, failed(err)
		}
		if err := os.Rename(tmp, asset); err != nil {
			os.Remove(tmp)
			return nil, failed(err)
		}
		stem, given := texts["stems"]
		if !given {
			stem, _ = readText(filepath.Join(ce.dir, "stems", id+".md"), maxExampleText)
		}
		if !strings.Contains(stem, "[FIGURE:") {
			texts["stems"] = stem + "\n\n[FIGURE: core_examples/assets/" + id + figExt + "]\n"
		}
	}
	for folder, content := range texts {
		if err := atomicfile.WriteFile(filepath.Join(ce.dir, folder, id+".md"), []byte(content), 0o644); err != nil {
			return nil, failed(err)
		}
	}
	row := map[string]string{"example_id": id, "kp_id": kp, "core_model": model, "difficulty": difficulty,
		"source_ref": ArgString(args, "source_ref"), "stem_ref": ref("stems"), "solution_ref": ref("solutions"),
		"model_ref": ref("models"), "discussion_ref": ref("discussions"), "tags": ArgString(args, "tags")}
	if _, ok := texts["variants"]; ok {
		row["variant_ref"] = ref("variants")
	} else if exists(filepath.Join(ce.dir, "variants", id+".md")) {
		row["variant_ref"] = ref("variants")
	}
	rows, header, err := ce.readWithHeader()
	if err != nil {
		return nil, err
	}
	// The predecessor appended a second row for an id registered again;
	// here the new row replaces it.
	replaced := false
	for i, r := range rows {
		if r["example_id"] == id {
			for k, v := range r {
				if _, set := row[k]; !set && !slices.Contains(coreColumns, k) {
					row[k] = v // a column of the file this tool does not know
				}
			}
			rows[i], replaced = row, true
		}
	}
	if !replaced {
		rows = append(rows, row)
	}
	if err := atomicfile.WriteFile(ce.csvPath(), encodeExamples(rows, header), 0o644); err != nil {
		return nil, failed(err)
	}
	return map[string]any{"ok": true, "example_id": id, "output": "[OK] Registered core example " + id, "example": row}, nil
}

// encodeExamples writes rows with coreColumns first, then any other column
// the file had.
func encodeExamples(rows []map[string]string, header []string) []byte {
	cols := slices.Clone(coreColumns)
	for _, h := range header {
		if h != "" && !slices.Contains(cols, h) {
			cols = append(cols, h)
		}
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(cols)
	for _, r := range rows {
		rec := make([]string, len(cols))
		for i, c := range cols {
			rec[i] = r[c]
		}
		w.Write(rec)
	}
	w.Flush()
	return b.Bytes()
}

// lessonExample is the stem (and options) of example exID of lesson's
// examples.csv.
func (ce *coreExamples) lessonExample(lesson, exID string) (string, error) {
	p, err := ce.files.resolve(filepath.Join(layout.Relative().Lessons(), lesson, "examples.csv"))
	if err != nil {
		return "", fault.New(fault.NotFound, map[string]any{"error": "lesson_examples_not_found", "from_lesson": lesson})
	}
	data, ok := readText(p, maxExamplesCSV)
	if !ok {
		return "", fault.Wrap(fault.Internal, errors.New("examples.csv unreadable"), "read lesson examples failed")
	}
	r := csv.NewReader(strings.NewReader(data))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	header, err := r.Read()
	if err != nil {
		return "", fault.New(fault.NotFound, map[string]any{"error": "lesson_example_not_found", "lesson_example_id": exID})
	}
	col := func(rec []string, name string) string {
		if i := slices.Index(header, name); i >= 0 && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			continue
		}
		if col(rec, "example_id") == exID {
			stem := col(rec, "stem_text")
			if opts := col(rec, "options"); opts != "" {
				stem += "\n" + opts
			}
			return stem, nil
		}
	}
	return "", fault.New(fault.NotFound, map[string]any{"error": "lesson_example_not_found", "from_lesson": lesson,
		"lesson_example_id": exID})
}

func (ce *coreExamples) renderPDF(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
	id := ArgString(args, "example_id")
	if !exams.ValidID(id) {
		return nil, fault.New(fault.Invalid, map[string]any{"error": "invalid_example_id", "example_id": id})
	}
	stemRef := "core_examples/stems/" + id + ".md"
	rows, err := ce.read()
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r["example_id"] == id && r["stem_ref"] != "" {
			stemRef = r["stem_ref"]
		}
	}
	stem := ""
	if p, err := ce.files.resolve(stemRef); err == nil {
		stem, _ = readText(p, maxExampleText)
	}
	if strings.TrimSpace(stem) == "" {
		return nil, fault.New(fault.NotFound, map[string]any{"error": "stem_not_found", "example_id": id,
			"message": "没有找到该例题的题干，请先用 core_example_register 登记。"})
	}
	if ce.render == nil {
		return nil, fault.New(fault.Unavailable, map[string]any{"error": "pdf_unavailable",
			"message": "服务器未配置 PDF 排版，无法生成例题 PDF。"})
	}
	var paras []string
	for _, line := range strings.Split(strings.ReplaceAll(stem, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if fig, ok := strings.CutPrefix(line, "[FIGURE:"); ok {
			line = "[图：" + filepath.Base(strings.TrimSpace(strings.TrimSuffix(fig, "]"))) + "]"
		}
		paras = append(paras, line)
	}
	doc, err := ce.render(ctx, "Core Example: "+id, paras)
	if err != nil {
		return nil, fault.OrInternal(err, "render core example failed")
	}
	rel := "core_examples/pdf/core_example_" + id + ".pdf"
	if err := atomicfile.WriteFile(filepath.Join(ce.dataDir, filepath.FromSlash(rel)), doc, 0o644); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "write core example PDF failed")
	}
	return map[string]any{"ok": true, "example_id": id, "output": "[OK] Wrote PDF: " + rel, "pdf": rel}, nil
}
