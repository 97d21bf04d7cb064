package structured

import (
	"errors"
	"strings"
	"testing"
)

var qs = MustCompile("questions", `{
  "type": "object",
  "required": ["questions"],
  "properties": {
    "questions": {"type": "array", "minItems": 1, "items": {
      "type": "object", "required": ["stem"],
      "properties": {"stem": {"type": "string", "minLength": 1}, "score": {"type": "number"}}
    }}
  }
}`)

func TestDecode(t *testing.T) {
	type out struct {
		Questions []struct {
			Stem  string  `json:"stem"`
			Score float64 `json:"score"`
		} `json:"questions"`
	}
	for _, tc := range []struct {
		name, reply string
		ok          bool
	}{
		{"plain", `{"questions":[{"stem":"1+1=?","score":2}]}`, true},
		{"fenced", "```json\n{\"questions\":[{\"stem\":\"a\"}]}\n```", true},
		{"prose around", "好的，结果如下：\n{\"questions\":[{\"stem\":\"a\"}]}\n以上。", true},
		{"not json", "我无法完成", false},
		{"wrong shape", `{"questions":[]}`, false},
		{"wrong type", `{"questions":[{"stem":3}]}`, false},
		{"array", `[1,2]`, false},
	} {
		var o out
		err := qs.Decode(tc.reply, &o)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if err != nil {
			var ae *AnswerError
			if !errors.Is(err, ErrBadAnswer) || !errors.As(err, &ae) || ae.Raw == "" {
				t.Errorf("%s: error %v is not an AnswerError with the raw reply", tc.name, err)
			}
			continue
		}
		if len(o.Questions) != 1 || o.Questions[0].Stem == "" {
			t.Errorf("%s: decoded %+v", tc.name, o)
		}
	}
}

func TestTruncate(t *testing.T) {
	if got := Truncate(strings.Repeat("题", 5), 3); got != "题题题…" {
		t.Fatalf("Truncate = %q", got)
	}
	if got := Truncate("abc", 3); got != "abc" {
		t.Fatalf("Truncate = %q", got)
	}
}

func TestResponseFormat(t *testing.T) {
	rf := qs.ResponseFormat()
	js, _ := rf["json_schema"].(map[string]any)
	if rf["type"] != "json_schema" || js["name"] != "questions" || js["schema"] == nil {
		t.Fatalf("ResponseFormat = %v", rf)
	}
}
