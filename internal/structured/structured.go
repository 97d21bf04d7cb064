// Package structured asks the model for JSON and holds it to a schema.
//
// Every LLM call whose answer is data, not prose (the assignment parse and
// autofill, question generation, grading, score tables read from OCR text),
// goes through Ask: the prompt carries the schema's text (Schema.Text;
// response_format is not sent by default, since many OpenAI-compatible
// providers refuse json_schema), the reply is extracted the predecessor's tolerant way
// (the whole text, else without a code fence, else the span from the first
// opening bracket to the last closing one) and validated against the schema
// with github.com/santhosh-tekuri/jsonschema/v6. A reply that is not JSON
// or does not match is ErrBadAnswer, with what was wrong and the start of
// the reply for the job's hints.
package structured

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/textcut"
)

// ErrBadAnswer is wrapped by every failure to read a reply as the schema's
// JSON.
var ErrBadAnswer = errors.New("the model's answer is not the JSON asked for")

// AnswerError is a reply that could not be used.
type AnswerError struct {
	Reason string // what was wrong
	Raw    string // the reply's first 500 characters
}

func (e *AnswerError) Error() string { return ErrBadAnswer.Error() + ": " + e.Reason }
func (e *AnswerError) Unwrap() error { return ErrBadAnswer }

// Schema is a compiled JSON schema with its source, which is also sent to
// the model.
type Schema struct {
	Name   string
	source map[string]any
	schema *jsonschema.Schema
}

// MustCompile compiles a JSON schema given as a JSON text; it panics on an
// invalid schema (schemas are constants of the code).
func MustCompile(name, src string) *Schema {
	s, err := Compile(name, src)
	if err != nil {
		panic(err)
	}
	return s
}

// Compile compiles a JSON schema given as a JSON text.
func Compile(name, src string) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("structured: schema %s: %w", name, err)
	}
	c := jsonschema.NewCompiler()
	url := "mem://" + name + ".json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("structured: schema %s: %w", name, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("structured: schema %s: %w", name, err)
	}
	var source map[string]any
	if err := json.Unmarshal([]byte(src), &source); err != nil {
		return nil, fmt.Errorf("structured: schema %s: %w", name, err)
	}
	return &Schema{Name: name, source: source, schema: sch}, nil
}

// Text is the schema as compact JSON, for the prompt.
func (s *Schema) Text() string {
	b, _ := json.Marshal(s.source)
	return string(b)
}

// ResponseFormat is the OpenAI response_format asking for this schema.
func (s *Schema) ResponseFormat() map[string]any {
	return map[string]any{"type": "json_schema", "json_schema": map[string]any{
		"name": s.Name, "schema": s.source, "strict": false,
	}}
}

// Decode extracts the JSON value of a reply, validates it against s and
// decodes it into out (a pointer). A failure is an *AnswerError.
func (s *Schema) Decode(content string, out any) error {
	raw, err := Extract(content)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return &AnswerError{Reason: err.Error(), Raw: preview(content)}
	}
	if err := s.schema.Validate(inst); err != nil {
		return &AnswerError{Reason: "does not match the schema: " + oneLine(err.Error()), Raw: preview(content)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &AnswerError{Reason: err.Error(), Raw: preview(content)}
	}
	return nil
}

// Extract returns the JSON text of a reply: the whole trimmed text when it
// parses, else the text inside a leading ```lang fence, else the span from
// the first '{' or '[' to the last matching '}' or ']'.
func Extract(content string) ([]byte, error) {
	t := strings.TrimSpace(content)
	if json.Valid([]byte(t)) {
		return []byte(t), nil
	}
	if rest, ok := strings.CutPrefix(t, "```"); ok {
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			rest = rest[i+1:]
		}
		rest = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "```"))
		if json.Valid([]byte(rest)) {
			return []byte(rest), nil
		}
		t = rest
	}
	for _, pair := range [][2]string{{"{", "}"}, {"[", "]"}} {
		i, j := strings.Index(t, pair[0]), strings.LastIndex(t, pair[1])
		if i >= 0 && j > i && json.Valid([]byte(t[i:j+1])) {
			return []byte(t[i : j+1]), nil
		}
	}
	return nil, &AnswerError{Reason: "no JSON value found in the reply", Raw: preview(content)}
}

// Ask sends req and decodes the reply into out, validated against s.
// Errors of the call itself are returned as they are; a reply that does
// not fit is an *AnswerError.
func Ask(ctx context.Context, c *llm.Client, req llm.Request, s *Schema, out any) (*llm.Response, error) {
	resp, err := c.Chat(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp, s.Decode(resp.Content, out)
}

// Truncate cuts s to n code points and adds "…" when it was longer (the
// predecessor's 12,000-character cut of texts sent to the model).
func Truncate(s string, n int) string {
	return textcut.Short(s, n)
}

func preview(s string) string {
	s = Truncate(s, 500)
	return strings.TrimSuffix(s, "…")
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return Truncate(s, 300)
}
