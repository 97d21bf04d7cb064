package examupload

import (
	"fmt"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/upload"
)

// Limits bound one upload.
type Limits = upload.Limits

// StoredFile is one uploaded file as kept in the job folder.
type StoredFile = upload.File

// File kinds (see internal/upload).
const (
	KindXLSX  = upload.KindXLSX
	KindCSV   = upload.KindCSV
	KindPDF   = upload.KindPDF
	KindImage = upload.KindImage
	KindText  = upload.KindText
)

// fields are the multipart file fields of /exam/upload/start and their
// folders in the job. scans: PDF and image score sheets are accepted
// (the pipeline has OCR and an LLM to read them).
func fields(scans bool) map[string]upload.Field {
	return map[string]upload.Field{
		"paper_files":  {Folder: "paper", Accept: document},
		"score_files":  {Folder: "scores", Accept: func(name string, head []byte) (string, error) { return scoreSheet(name, head, scans) }},
		"answer_files": {Folder: "answers", Accept: document},
	}
}

func document(name string, head []byte) (string, error) {
	return upload.DocumentKind(name, head, false)
}

// scoreSheet accepts .xlsx and .csv score sheets, and PDFs and images when
// scans is true (they are OCR'd, then the LLM reads the table).
func scoreSheet(name string, head []byte, scans bool) (string, error) {
	c := upload.Sniff(name, head)
	switch {
	case c.OLE:
		return "", fault.Newf(fault.Unsupported,
			"%s 是旧版 Excel（.xls）文件，暂不支持，请在 Excel 中另存为 .xlsx 后上传。 (.xls is not supported: save the sheet as .xlsx and upload again)", name)
	case c.Zip:
		return KindXLSX, nil
	case (c.PDF || c.Image) && scans:
		if c.PDF {
			return KindPDF, nil
		}
		return KindImage, nil
	case c.PDF || c.Image:
		return "", fault.New(fault.Unsupported, map[string]any{
			"error": "score_sheet_needs_llm",
			"message": fmt.Sprintf("%s：从 PDF 或图片读取成绩需要 OCR 和 LLM 服务，当前未配置，请上传 .xlsx 或 .csv 成绩表。"+
				"(%s: reading scores from a PDF or an image needs OCR and an LLM provider, which are not configured here; upload the sheet as .xlsx or .csv.)", name, name),
			"hints": []string{
				"配置 LLM 服务后即可上传 PDF 或图片成绩表：设置 LLM_BASE_URL、LLM_MODEL 和 LLM_API_KEY（或 LLM_PROVIDERS_FILE）后重启服务。" +
					"(An LLM provider enables PDF and image score sheets: set LLM_BASE_URL, LLM_MODEL and LLM_API_KEY, or LLM_PROVIDERS_FILE, and restart.)",
			},
		})
	case c.Text:
		return KindCSV, nil
	}
	if scans {
		return "", fault.Newf(fault.Unsupported, "%s: score sheets must be .xlsx, .csv, a PDF or an image (got %s)", name, c.Type)
	}
	return "", fault.Newf(fault.Unsupported, "%s: score sheets must be .xlsx or .csv (got %s)", name, c.Type)
}
