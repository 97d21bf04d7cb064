package examupload

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/limits"
)

// startPipeline runs a pipeline and its worker in temporary directories.
func startPipeline(t *testing.T, slots limits.Semaphore) *Pipeline {
	t.Helper()
	p := New(Config{DataDir: t.TempDir(), UploadsDir: t.TempDir(), ParseSlots: slots})
	if err := p.Runner().Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Runner().Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return p
}

// upload posts score files to Start and returns the job id.
func uploadFiles(t *testing.T, p *Pipeline, files map[string][]byte) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("exam_id", "BIG")
	for name, data := range files {
		w, err := mw.CreateFormFile("score_files", name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	mw.Close()
	req := httptest.NewRequest(http.MethodPost, "/exam/upload/start", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	rec := httptest.NewRecorder()
	p.Start(rec, req)
	var out struct {
		JobID string `json:"job_id"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.JobID == "" {
		t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	return out.JobID
}

// waitJob polls the job until it is done or failed.
func waitJob(t *testing.T, p *Pipeline, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		rec, err := p.Store().Load(id)
		if err != nil {
			t.Fatal(err)
		}
		if s := rec["status"]; s == StatusDone || s == StatusFailed {
			return rec
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job %s not finished", id)
	return nil
}

// bigWorkbook is an .xlsx of one sheet: a header (姓名, 班级, 1, 2) and
// rows students, written with archive/zip.
func bigWorkbook(t *testing.T, rows int) []byte {
	t.Helper()
	const ns = `xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"`
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	put := func(name string, write func(w io.Writer)) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		write(w)
	}
	str := func(s string) func(io.Writer) { return func(w io.Writer) { io.WriteString(w, s) } }
	put("[Content_Types].xml", str(`<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>`))
	put("xl/workbook.xml", str(`<workbook `+ns+`><sheets><sheet name="成绩" sheetId="1" r:id="rId1"/></sheets></workbook>`))
	put("xl/_rels/workbook.xml.rels", str(`<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">`+
		`<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>`))
	put("xl/worksheets/sheet1.xml", func(w io.Writer) {
		fmt.Fprint(w, `<worksheet `+ns+`><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>姓名</t></is></c>`+
			`<c r="B1" t="inlineStr"><is><t>班级</t></is></c><c r="C1"><v>1</v></c><c r="D1"><v>2</v></c></row>`)
		for r := 2; r < rows+2; r++ {
			fmt.Fprintf(w, `<row r="%d"><c r="A%d" t="inlineStr"><is><t>学生%d</t></is></c><c r="B%d" t="inlineStr"><is><t>1班</t></is></c>`+
				`<c r="C%d"><v>%d</v></c><c r="D%d"><v>3</v></c></row>`, r, r, r, r, r, r%5, r)
		}
		fmt.Fprint(w, `</sheetData></worksheet>`)
	})
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A score file past a cap fails the job with scores_too_large, the cap in
// the detail and hints for the teacher, even beside a good file.
func TestTooLargeSheetFailsJob(t *testing.T) {
	good := []byte("姓名,班级,1\n张三,1班,4\n")
	for _, tc := range []struct {
		name   string
		files  map[string][]byte
		detail string
	}{
		{"25,000 rows", map[string][]byte{"big.xlsx": bigWorkbook(t, 25000)}, "more than 20000 rows hold data"},
		{"a 5,000-byte name", map[string][]byte{"name.csv": []byte("姓名,1\n" + strings.Repeat("名", 1700) + ",3\n")}, "cell A2 is longer than 4096 bytes"},
		{"beside a good file", map[string][]byte{"a.csv": good, "b.csv": []byte("姓名,1\n张三," + strings.Repeat("9", 5000) + "\n")}, "b.csv: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPipeline(t, nil)
			rec := waitJob(t, p, uploadFiles(t, p, tc.files))
			if rec["status"] != StatusFailed || rec["error"] != "scores_too_large" || rec["step"] != "parse_scores" {
				t.Fatalf("job %v %v at %v: %v", rec["status"], rec["error"], rec["step"], rec["error_detail"])
			}
			detail, _ := rec["error_detail"].(string)
			if !strings.Contains(detail, tc.detail) || !strings.Contains(detail, "成绩表超出大小限制") {
				t.Errorf("detail %q lacks %q", detail, tc.detail)
			}
			hints, _ := rec["hints"].([]any)
			all := fmt.Sprint(hints...)
			if len(hints) < 2 || !strings.Contains(all, "工作表") || !strings.Contains(all, "(Keep only the score table") ||
				!strings.Contains(all, "64") || !strings.Contains(all, "CSV") {
				t.Errorf("hints %q", hints)
			}
		})
	}
}

// A parse waits for a slot of ParseSlots, and a worker stopped while it
// waits gives up at once without failing the job.
func TestParseSlots(t *testing.T) {
	slots := limits.NewSem(1)
	if err := slots.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, slots)
	id := uploadFiles(t, p, map[string][]byte{"s.csv": []byte("姓名,班级,1\n张三,1班,4\n")})
	time.Sleep(300 * time.Millisecond)
	if rec, _ := p.Store().Load(id); rec["status"] != StatusProcessing || rec["step"] != "parse_scores" {
		t.Fatalf("while the slot is taken: %v at %v", rec["status"], rec["step"])
	}
	slots.Release()
	if rec := waitJob(t, p, id); rec["status"] != StatusDone {
		t.Fatalf("after the slot is free: %v %v", rec["status"], rec["error_detail"])
	}
	if slots.InUse() != 0 {
		t.Errorf("%d slots still taken", slots.InUse())
	}

	// Stopping the worker while a job waits for a slot.
	if err := slots.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer slots.Release()
	q := New(Config{DataDir: t.TempDir(), UploadsDir: t.TempDir(), ParseSlots: slots})
	if err := q.Runner().Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	id = uploadFiles(t, q, map[string][]byte{"s.csv": []byte("姓名,班级,1\n张三,1班,4\n")})
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.Runner().Stop(ctx); err != nil {
		t.Fatalf("stop while waiting for a slot: %v", err)
	}
	if rec, _ := q.Store().Load(id); rec["status"] == StatusFailed {
		t.Errorf("a job stopped while waiting failed: %v", rec["error_detail"])
	}
}

// A nil *limits.Sem (an unset shared semaphore) means no limit.
func TestParseSlotsNilSem(t *testing.T) {
	var none *limits.Sem
	p := startPipeline(t, none)
	if rec := waitJob(t, p, uploadFiles(t, p, map[string][]byte{"s.csv": []byte("姓名,班级,1\n张三,1班,4\n")})); rec["status"] != StatusDone {
		t.Fatalf("%v %v", rec["status"], rec["error_detail"])
	}
}
