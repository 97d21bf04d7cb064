package exams

import (
	"bytes"
	"encoding/csv"
	"io"
	"strconv"
	"time"
)

// NewExam builds an exam from rows in memory (the upload pipeline uses it
// to analyse an exam before writing it). kpMap may be nil.
func NewExam(id string, meta map[string]any, responses []Response, questions []Question, kpMap map[string]string, now time.Time) *Exam {
	if meta == nil {
		meta = map[string]any{}
	}
	e := &Exam{PathID: id, ID: id, Manifest: &Manifest{ExamID: id, Meta: meta}, HasResponses: true,
		Responses: responses, Questions: questions, kpMap: kpMap, parsedAt: now}
	e.build()
	return e
}

// ResponsesCSV encodes rows with the predecessor's 12-column header.
func ResponsesCSV(rows []Response) []byte {
	var buf bytes.Buffer
	WriteResponsesCSV(&buf, rows)
	return buf.Bytes()
}

// WriteResponsesCSV writes what ResponsesCSV returns to w, row by row.
func WriteResponsesCSV(w io.Writer, rows []Response) error {
	cw := csv.NewWriter(w)
	cw.Write(responseColumns)
	rec := make([]string, len(responseColumns))
	for _, r := range rows {
		score := ""
		if r.Scored {
			score = FormatScore(r.Score)
		}
		rec = append(rec[:0], r.ExamID, r.StudentID, r.StudentName, r.ClassName, r.QuestionID, r.QuestionNo, r.SubNo,
			r.RawLabel, r.RawValue, r.RawAnswer, score, r.IsCorrect)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// QuestionsCSV encodes questions.csv.
func QuestionsCSV(qs []Question) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(questionColumns)
	for i, q := range qs {
		max := ""
		if q.HasMax {
			max = FormatScore(q.MaxScore)
		}
		order := q.Order
		if order == "" {
			order = strconv.Itoa(i + 1)
		}
		w.Write([]string{q.ID, q.No, q.SubNo, order, max, q.StemRef})
	}
	w.Flush()
	return buf.Bytes()
}

// FormatScore writes "4" for integral scores and "2.5" otherwise.
func FormatScore(v float64) string { return formatScore(v) }

// ReadResponses reads a responses CSV written by ResponsesCSV (or the
// predecessor).
func ReadResponses(path string) ([]Response, error) { return readResponses(path) }

// ReadQuestions reads a questions.csv.
func ReadQuestions(path string) ([]Question, error) { return readQuestions(path) }
