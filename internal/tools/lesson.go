package tools

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/policy"
	"github.com/lectern/lectern/internal/textcut"
	"github.com/lectern/lectern/internal/upload"
)

// Bounds of a lesson capture.
const (
	maxLessonSources     = 20
	maxLessonSourceBytes = 32 << 20
	maxLessonTotalBytes  = 128 << 20
	maxLessonExamples    = 500
	maxTopicRunes        = 200
	maxNotesBytes        = 256 << 10
	lessonPreviewCount   = 10
)

// LessonConfig is what lesson.capture needs besides the lessons listing.
type LessonConfig struct {
	// UploadsDir is the tenant's UPLOADS_DIR: sources may be files POST
	// /upload stored ("uploads/<upload_id>/<file>").
	UploadsDir string
	// Text reads PDFs and images (the tenant's OCR extractor); nil: only
	// text and .docx sources can be read.
	Text upload.Extractor
}

// LessonTools are lesson.list and lesson.capture, for teachers, over the
// lessons of svc's DATA_DIR (DATA_DIR/lessons/<lesson_id>/).
//
// lesson.capture reads the sources in the call: it runs inside the
// teacher's chat job, and its result (the examples found) is what the
// model answers with. Each PDF or image page is OCR'd within the tenant's
// OCR slots, and the sources are bounded (20 files, 32 MiB each, 128 MiB
// in all).
func LessonTools(svc *assignments.Service, cfg LessonConfig) []Tool {
	lc := &lessonCapture{files: fileRoots{dataDir: svc.DataDir(), uploadsDir: cfg.UploadsDir}, text: cfg.Text,
		now: time.Now}
	return []Tool{
		{
			Name:        "lesson.list",
			Description: "列出已采集的课堂（课堂编号和摘要）。List the lessons.",
			Parameters:  object(map[string]any{}),
			Rule:        policy.Teacher,
			Run: func(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
				list, err := svc.Lessons()
				if err != nil {
					return nil, fault.Wrap(fault.Internal, err, "list lessons failed")
				}
				return map[string]any{"lessons": list}, nil
			},
		},
		{
			Name: "lesson.capture",
			Description: "采集一节课的材料：读取课件/板书/讲义（PDF、图片经 OCR，文本、Markdown、docx 直接读取），" +
				"抽取其中的例题（题号开头的题干和 A-D 选项），保存到课堂 lesson_id 下（examples.csv、课堂讨论、课堂摘要）。" +
				"sources 是已上传文件的路径（POST /upload 返回的 uploads/…，或 lessons/ 下已有的文件）。" +
				"Capture lesson materials: text/OCR and the examples in them.",
			Parameters: object(map[string]any{
				"lesson_id": str("课堂编号，如 L2403_2026-02-04（字母、数字、_-.）"),
				"topic":     str("本节课主题"),
				"sources": map[string]any{"type": "array", "items": map[string]any{"type": "string"},
					"description": "材料文件路径列表（最多 20 个）"},
				"class_name":       str("班级"),
				"discussion_notes": str("课堂讨论记录：文字，或已上传的 Markdown 文件路径"),
				"lesson_plan":      str("教案文件路径（可选，作为一份材料读取）"),
			}, "lesson_id", "topic", "sources"),
			Rule: policy.Teacher,
			Run:  lc.run,
		},
	}
}

type lessonCapture struct {
	files fileRoots
	text  upload.Extractor
	now   func() time.Time
}

// lessonExample is one row of a lesson's examples.csv.
type lessonExample struct {
	ExampleID string `json:"example_id"`
	StemText  string `json:"stem_text"`
	Options   string `json:"options"`
	SourceRef string `json:"source_ref"`
}

var lessonExampleColumns = []string{"example_id", "lesson_id", "stem_text", "options", "answer", "kp_candidate",
	"difficulty", "source_ref", "notes"}

type lessonSource struct {
	File string `json:"file"`
	Type string `json:"type"`
}

func (lc *lessonCapture) run(ctx context.Context, c caller.Principal, args map[string]any) (any, error) {
	id := ArgString(args, "lesson_id")
	if !exams.ValidID(id) {
		return nil, fault.New(fault.Invalid, map[string]any{"error": "invalid_lesson_id", "lesson_id": id})
	}
	topic := ArgString(args, "topic")
	if topic == "" || !plainText(topic, maxTopicRunes) {
		return nil, fault.Newf(fault.Invalid, "topic is required (at most %d characters, one line)", maxTopicRunes)
	}
	class := ArgString(args, "class_name")
	if !plainText(class, 128) {
		return nil, fault.New(fault.Invalid, "invalid class_name")
	}
	var refs []string
	list, _ := args["sources"].([]any)
	for _, x := range list {
		if s, _ := x.(string); strings.TrimSpace(s) != "" {
			refs = append(refs, strings.TrimSpace(s))
		}
	}
	if plan := ArgString(args, "lesson_plan"); plan != "" {
		refs = append(refs, plan)
	}
	if len(refs) == 0 {
		return nil, fault.New(fault.Invalid, "sources must list at least one file")
	}
	if len(refs) > maxLessonSources {
		return nil, fault.Newf(fault.Invalid, "too many sources: at most %d", maxLessonSources)
	}
	var paths []string
	var total int64
	for _, ref := range refs {
		p, err := lc.files.resolve(ref)
		if err != nil {
			return nil, fault.New(fault.Invalid, map[string]any{"error": "source_not_found", "source": ref,
				"message": "材料文件不存在，或不在可读取的位置（POST /upload 上传的 uploads/…，或 lessons/ 下的文件）。"})
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fault.Wrap(fault.Internal, err, "read lesson source failed")
		}
		if fi.Size() > maxLessonSourceBytes {
			return nil, fault.Newf(fault.TooLarge, "%s: a source may have at most %d MiB", filepath.Base(ref), maxLessonSourceBytes>>20)
		}
		if total += fi.Size(); total > maxLessonTotalBytes {
			return nil, fault.Newf(fault.TooLarge, "the sources may have at most %d MiB in all", maxLessonTotalBytes>>20)
		}
		paths = append(paths, p)
	}
	notes := ArgString(args, "discussion_notes")
	if p, err := lc.files.resolve(notes); err == nil {
		// A path to notes already uploaded (the predecessor's form).
		text, ok := readText(p, maxNotesBytes)
		if !ok {
			return nil, fault.Newf(fault.Invalid, "discussion_notes: %s is not a text file of at most %d KiB", filepath.Base(notes), maxNotesBytes>>10)
		}
		notes = text
	} else if len(notes) > maxNotesBytes {
		return nil, fault.Newf(fault.TooLarge, "discussion_notes may have at most %d KiB", maxNotesBytes>>10)
	}

	root := lc.files.paths().Lessons()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "capture lesson failed")
	}
	// The capture is built in a hidden folder (GET /lessons skips names
	// starting with '.') and swapped in at the end, so a failed or
	// concurrent capture never leaves a half-written lesson.
	tmp, err := os.MkdirTemp(root, ".capture-"+id+"-")
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "capture lesson failed")
	}
	defer os.RemoveAll(tmp)
	for _, sub := range []string{"sources", "text"} {
		if err := os.MkdirAll(filepath.Join(tmp, sub), 0o755); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "capture lesson failed")
		}
	}

	var sources []lessonSource
	var warnings []string
	var examples []lessonExample
	texts := 0
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := upload.UniqueName(filepath.Join(tmp, "sources"), filepath.Base(p))
		dest := filepath.Join(tmp, "sources", name)
		if err := copyFile(dest, p, maxLessonSourceBytes); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "copy lesson source failed")
		}
		h, err := head(dest)
		if err != nil {
			return nil, fault.Wrap(fault.Internal, err, "read lesson source failed")
		}
		kind, err := upload.DocumentKind(name, h, true)
		if err != nil {
			sources = append(sources, lessonSource{File: name, Type: "unknown"})
			warnings = append(warnings, name+": "+sourceProblem(err))
			continue
		}
		sources = append(sources, lessonSource{File: name, Type: kind})
		text, _, err := upload.Text(ctx, lc.text, dest, kind)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			warnings = append(warnings, name+": "+sourceProblem(err))
			continue
		}
		text = normalizeLines(text)
		if text == "" {
			warnings = append(warnings, name+": 没有读出文字")
			continue
		}
		texts++
		stem := strings.TrimSuffix(name, filepath.Ext(name))
		if err := atomicfile.WriteFile(filepath.Join(tmp, "text", stem+".txt"), []byte(text), 0o644); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "capture lesson failed")
		}
		for _, ex := range extractExamples(text) {
			if len(examples) == maxLessonExamples {
				warnings = append(warnings, fmt.Sprintf("例题超过 %d 道，其余未保存", maxLessonExamples))
				break
			}
			ex.ExampleID = fmt.Sprintf("E%03d", len(examples)+1)
			ex.SourceRef = name
			examples = append(examples, ex)
		}
	}
	if texts == 0 {
		return nil, fault.New(fault.Invalid, map[string]any{"error": "no_text", "lesson_id": id,
			"message": "没有从任何材料中读出文字。", "warnings": warnings})
	}

	if err := lc.write(tmp, id, topic, class, notes, c, sources, examples); err != nil {
		return nil, err
	}
	if err := swapIn(root, id, tmp); err != nil {
		return nil, err
	}
	preview := make([]map[string]string, 0, min(len(examples), lessonPreviewCount))
	for _, ex := range examples[:min(len(examples), lessonPreviewCount)] {
		preview = append(preview, map[string]string{"example_id": ex.ExampleID, "stem_text": textcut.Short(ex.StemText, 200),
			"options": ex.Options, "source_ref": ex.SourceRef})
	}
	out := map[string]any{"ok": true, "lesson_id": id, "output": "[OK] Lesson captured at lessons/" + id,
		"lesson_dir": "lessons/" + id, "sources": sources, "examples_count": len(examples), "examples": preview}
	if len(warnings) > 0 {
		out["warnings"] = warnings
	}
	return out, nil
}

// write puts the lesson's files in dir: manifest.json (the predecessor's),
// lesson.json (what GET /lessons lists), examples.csv, class_discussion.md
// and lesson_summary.md.
func (lc *lessonCapture) write(dir, id, topic, class, notes string, c caller.Principal, sources []lessonSource, examples []lessonExample) error {
	failed := func(err error) error { return fault.Wrap(fault.Internal, err, "capture lesson failed") }
	if err := atomicfile.WriteJSON(filepath.Join(dir, "manifest.json"),
		map[string]any{"lesson_id": id, "topic": topic, "class_name": class, "sources": sources}); err != nil {
		return failed(err)
	}
	names := make([]string, len(sources))
	for i, s := range sources {
		names[i] = s.File
	}
	summary := fmt.Sprintf("%s：%d 道例题（材料：%s）", topic, len(examples), strings.Join(names, "、"))
	if err := atomicfile.WriteJSON(filepath.Join(dir, "lesson.json"), map[string]any{
		"lesson_id": id, "topic": topic, "class_name": class, "summary": summary, "sources": sources,
		"examples_count": len(examples), "captured_at": lc.now().Format(assignments.TimeLayout), "captured_by": c.TeacherID,
	}); err != nil {
		return failed(err)
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(lessonExampleColumns)
	for _, ex := range examples {
		w.Write([]string{ex.ExampleID, id, ex.StemText, ex.Options, "", "", "", ex.SourceRef, ""})
	}
	w.Flush()
	if err := atomicfile.WriteFile(filepath.Join(dir, "examples.csv"), b.Bytes(), 0o644); err != nil {
		return failed(err)
	}
	if notes == "" {
		notes = "Lesson: " + topic + "\nKey Misconceptions:\n- \nEmphasis KP:\n- \nClass Observations:\n- \nHomework Focus:\n- "
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "class_discussion.md"), []byte(notes), 0o644); err != nil {
		return failed(err)
	}
	lines := []string{"Lesson: " + topic, "Lesson ID: " + id, "", "Sources: " + strings.Join(names, ", "),
		fmt.Sprintf("Examples extracted: %d", len(examples)), "", "Example Preview:"}
	for _, ex := range examples[:min(5, len(examples))] {
		lines = append(lines, "- "+ex.ExampleID+": "+textcut.Short(ex.StemText, 120))
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "lesson_summary.md"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return failed(err)
	}
	return nil
}

// swapIn replaces lessons/<id> with the capture built in tmp: the old
// folder is moved aside first and removed once the new one is in place
// (restored if that fails).
func swapIn(root, id, tmp string) error {
	final := filepath.Join(root, id)
	var old string
	if exists(final) {
		old = filepath.Join(root, ".old-"+id+"-"+randomHex(4))
		if err := os.Rename(final, old); err != nil {
			return fault.Wrap(fault.Internal, err, "replace lesson failed")
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		if old != "" {
			os.Rename(old, final)
		}
		if exists(final) {
			return fault.New(fault.Conflict, "another capture of this lesson finished at the same time; retry")
		}
		return fault.Wrap(fault.Internal, err, "replace lesson failed")
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

// sourceProblem says why a source gave no text, without server paths.
func sourceProblem(err error) string {
	var fe *fault.Error
	switch {
	case errors.Is(err, upload.ErrNoExtractor), errors.Is(err, ocr.ErrUnavailable):
		return "无法识别文字：服务器没有可用的 OCR（ocr_unavailable）"
	case errors.As(err, &fe) && fe.Code != fault.Internal:
		if msg, ok := fe.Detail.(string); ok {
			return msg
		}
	}
	return "读取失败"
}

// normalizeLines keeps the trimmed, non-blank lines.
func normalizeLines(text string) string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

var (
	questionStart = regexp.MustCompile(`^\d+\s*[.、．]`)
	optionStart   = regexp.MustCompile(`^[A-DＡ-Ｄ]\s*[.、．]`)
)

// extractExamples finds the examples of a text as the predecessor's
// lesson capture did: a line starting with a number and "." or "、"
// starts an example, lines starting with A-D and "." or "、" are its
// options, other lines continue its stem (text before the first example
// is not one).
func extractExamples(text string) []lessonExample {
	var out []lessonExample
	var stem string
	var options []string
	flush := func() {
		if stem != "" {
			out = append(out, lessonExample{StemText: stem, Options: strings.Join(options, " | ")})
		}
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case questionStart.MatchString(line):
			flush()
			stem, options = line, nil
		case optionStart.MatchString(line):
			if stem != "" {
				options = append(options, line)
			}
		case stem != "":
			stem += " " + line
		}
	}
	flush()
	return out
}
