package examupload

import (
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
// folders in the job.
var fields = map[string]upload.Field{
	"paper_files":  {Folder: "paper", Accept: document},
	"score_files":  {Folder: "scores", Accept: scoreSheet},
	"answer_files": {Folder: "answers", Accept: document},
}

func document(name string, head []byte) (string, error) { return upload.DocumentKind(name, head, false) }

// scoreSheet accepts .xlsx and .csv score sheets.
func scoreSheet(name string, head []byte) (string, error) {
	c := upload.Sniff(name, head)
	switch {
	case c.OLE:
		return "", fault.Newf(fault.Unsupported,
			"%s 是旧版 Excel（.xls）文件，暂不支持，请在 Excel 中另存为 .xlsx 后上传。 (.xls is not supported: save the sheet as .xlsx and upload again)", name)
	case c.Zip:
		return KindXLSX, nil
	case c.PDF || c.Image:
		return "", fault.Newf(fault.Unsupported,
			"%s: score sheets must be .xlsx or .csv; reading scores from PDFs and images needs OCR, which is not available yet", name)
	case c.Text:
		return KindCSV, nil
	}
	return "", fault.Newf(fault.Unsupported, "%s: score sheets must be .xlsx or .csv (got %s)", name, c.Type)
}
