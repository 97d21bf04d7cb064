package assignupload

import (
	"path/filepath"
	"strings"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/upload"
)

// Folders of a job's uploads (and of the confirmed assignment's copies).
const (
	folderSource = "source"
	folderAnswer = "answer_source"
)

// textExts are the text sources, read as text (the predecessor's
// extract_text_from_file list).
var textExts = map[string]bool{".md": true, ".markdown": true, ".txt": true, ".tex": true}

// sourceKind accepts a paper or answer file: a PDF, an image, a .docx, or
// a text file named .md .markdown .txt or .tex.
func sourceKind(name string, head []byte) (string, error) {
	kind, err := upload.DocumentKind(name, head, true)
	if err != nil {
		return "", err
	}
	if ext := strings.ToLower(filepath.Ext(name)); kind == upload.KindText && !textExts[ext] {
		return "", fault.Newf(fault.Unsupported, "不支持的文件类型：%s。文本文件请使用 .md、.markdown、.txt 或 .tex。"+
			"(%s: text files must be .md, .markdown, .txt or .tex)", ext, name)
	}
	return kind, nil
}

// uploadFields are the multipart file fields of one request, each field
// name to its folder ("files" and "files[]" are the same field). Each
// folder takes at most DefaultFilesPerField files; the closures count, so
// a fresh set is made per request.
func uploadFields(folders map[string]string) map[string]upload.Field {
	counts := map[string]int{}
	out := make(map[string]upload.Field, len(folders))
	for field, folder := range folders {
		out[field] = upload.Field{Folder: folder, Accept: func(name string, head []byte) (string, error) {
			if counts[folder]++; counts[folder] > DefaultFilesPerField {
				return "", fault.Newf(fault.TooLarge, "每个字段最多上传 %d 个文件。(at most %d files per field)", DefaultFilesPerField, DefaultFilesPerField)
			}
			return sourceKind(name, head)
		}}
	}
	return out
}

// startFields are the file fields of /assignment/upload/start.
var startFields = map[string]string{
	"files": folderSource, "files[]": folderSource,
	"answer_files": folderAnswer, "answer_files[]": folderAnswer,
}

// ocrFields are the file fields of /assignment/questions/ocr.
var ocrFields = map[string]string{"files": folderSource, "files[]": folderSource}

// byFolder merges the files Receive returned per field into per-folder
// lists, in the order the fields map lists them.
func byFolder(files map[string][]upload.File, fields map[string]string) map[string][]upload.File {
	out := map[string][]upload.File{}
	for _, field := range []string{"files", "files[]", "answer_files", "answer_files[]"} {
		if folder, ok := fields[field]; ok {
			out[folder] = append(out[folder], files[field]...)
		}
	}
	return out
}

// deliveryMode is pdf when a source is a PDF, else text when a source is
// text (or .docx), else image.
func deliveryMode(sources []upload.File) string {
	mode := "image"
	for _, f := range sources {
		switch f.Kind {
		case upload.KindPDF:
			return "pdf"
		case upload.KindText, upload.KindDOCX:
			mode = "text"
		}
	}
	return mode
}
