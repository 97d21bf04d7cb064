package exams

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const goldenResponses = "exam_id,student_id,student_name,class_name,question_id,question_no,sub_no,raw_label,raw_value,raw_answer,score,is_correct\n" +
	"E1,s1,甲,一班,Q1,1,,1,4,A,4,1\n" +
	"E1,s1,甲,一班,Q2,2,,2,1,,1,0\n" +
	"E1,s1,甲,一班,Q11_1,11,1,11(1),3,,3,\n" +
	"E1,s1,甲,一班,Q11_2,11,2,11(2),5,,5,\n" +
	"E1,s2,乙,一班,Q1,1,,1,3,B,3,0\n" +
	"E1,s2,乙,一班,Q2,2,,2,2,,2,0\n" +
	"E1,s2,乙,一班,Q11_1,11,1,11(1),,,2.5,\n" +
	"E1,s2,乙,一班,QX,,,x,1,,1,\n" +
	"E1,s3,丙,二班,Q1,1,,1,4,,4,1\n" +
	"E1,s3,丙,二班,Q2,2,,2,1,,1,0\n" +
	"E1,s4,丁,二班,Q1,1,,1,0,,0,0\n" +
	"E1,s4,丁,二班,Q2,2,,2,,,,\n" +
	"E1,s5,戊,二班,Q1,1,,1,,,,\n" +
	"E1,,无号,三班,Q1,1,,1,2,,2,0\n" +
	"E1,,无号,三班,Q12,12,,12,7,,7,\n"

const goldenQuestions = "question_id,question_no,sub_no,order,max_score,stem_ref\nQ1,1,,1,4,\nQ2,2,,2,2,\nQ11_1,11,1,3,4,\nQ11_2,11,2,4,6,\nQ12,12,,5,,\n"

var update = flag.Bool("update", false, "rewrite testdata/http_bodies.golden")

// TestHTTPBodiesGolden pins the exact bodies (and statuses) of the exam
// endpoints, error cases included, over an exam with sub-questions, a
// student without an id, unscored rows, a question only in the responses,
// a stored and a broken draft. The views behind them are shared with the
// agent's tools; a change here is a change of the HTTP API. Run with
// -update to accept an intended change.
func TestHTTPBodiesGolden(t *testing.T) {
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "exams", "E1", "manifest.json"), `{"exam_id":"E1","generated_at":"2026-01-01T00:00:00","meta":{"subject":"物理"},"files":{}}`)
	writeFile(t, filepath.Join(data, "exams", "E1", "derived", "responses_scored.csv"), goldenResponses)
	writeFile(t, filepath.Join(data, "exams", "E1", "derived", "questions.csv"), goldenQuestions)
	writeFile(t, filepath.Join(data, "exams", "E2", "manifest.json"), `{"exam_id":"E2x","files":{}}`)
	writeFile(t, filepath.Join(data, "exams", "E3", "manifest.json"), `{"exam_id":"E3","files":{}}`)
	writeFile(t, filepath.Join(data, "exams", "E3", "derived", "responses_scored.csv"), "exam_id,student_id,student_name,class_name,question_id,question_no,score\nE3,a,A,c,TOTAL,,50\nE3,b,B,c,TOTAL,,70\n")
	writeFile(t, filepath.Join(data, "exams", "E4", "manifest.json"), `{"exam_id":"E4","files":{}}`)
	writeFile(t, filepath.Join(data, "exams", "E4", "derived", "responses_scored.csv"), goldenResponses)
	writeFile(t, filepath.Join(data, "analysis", "E4", "draft.json"), `{"exam_id":"E4","totals":{"x":1}}`)
	writeFile(t, filepath.Join(data, "exams", "E5", "manifest.json"), `{"exam_id":"E5","files":{}}`)
	writeFile(t, filepath.Join(data, "exams", "E5", "derived", "responses_scored.csv"), goldenResponses)
	writeFile(t, filepath.Join(data, "analysis", "E5", "draft.json"), `{broken`)
	svc := NewService(data)
	svc.now = func() time.Time { return time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC) }
	api := NewAPI(svc, "", nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /exams", api.List)
	mux.HandleFunc("GET /exam/{exam_id}", api.Get)
	mux.HandleFunc("GET /exam/{exam_id}/analysis", api.Analysis)
	mux.HandleFunc("GET /exam/{exam_id}/students", api.Students)
	mux.HandleFunc("GET /exam/{exam_id}/student/{student_id}", api.Student)
	mux.HandleFunc("GET /exam/{exam_id}/question/{question_id}", api.Question)
	mux.HandleFunc("GET /exam/{exam_id}/charts", api.Charts)
	mux.HandleFunc("GET /exam/{exam_id}/charts/{name}", api.Chart)
	var out bytes.Buffer
	paths := []string{"/exams"}
	for _, id := range []string{"E1", "E2", "E3", "E4", "E5", "E9", "%2e%2e"} {
		paths = append(paths, "/exam/"+id, "/exam/"+id+"/analysis", "/exam/"+id+"/students", "/exam/"+id+"/students?limit=2",
			"/exam/"+id+"/students?limit=0", "/exam/"+id+"/students?limit=-3", "/exam/"+id+"/students?limit=z",
			"/exam/"+id+"/student/s1", "/exam/"+id+"/student/s2", "/exam/"+id+"/student/s5", "/exam/"+id+"/student/无号", "/exam/"+id+"/student/zz",
			"/exam/"+id+"/question/Q1", "/exam/"+id+"/question/Q11_1", "/exam/"+id+"/question/Q12", "/exam/"+id+"/question/QX", "/exam/"+id+"/question/TOTAL", "/exam/"+id+"/question/nope", "/exam/"+id+"/charts", "/exam/"+id+"/charts/x.svg", "/exam/"+id+"/charts/totals.png")
	}
	for _, p := range paths {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		out.WriteString(p + " " + http.StatusText(w.Code) + " " + w.Header().Get("Content-Type") + "\n")
		body := bytes.ReplaceAll(w.Body.Bytes(), []byte(svc.now().Format("2006-01-02T15:04")), []byte("NOW"))
		out.Write(body)
		out.WriteString("\n")
	}
	f := filepath.Join("testdata", "http_bodies.golden")
	if *update {
		if err := os.WriteFile(f, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, out.Bytes()) {
		wl, gl := bytes.Split(want, []byte("\n")), bytes.Split(out.Bytes(), []byte("\n"))
		for i := range max(len(wl), len(gl)) {
			var w, g []byte
			if i < len(wl) {
				w = wl[i]
			}
			if i < len(gl) {
				g = gl[i]
			}
			if !bytes.Equal(w, g) {
				t.Fatalf("line %d differs:\n got %s\nwant %s", i+1, g, w)
			}
		}
	}
}
