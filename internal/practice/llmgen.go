package practice

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/structured"
	"github.com/lectern/lectern/internal/textcut"
)

// KindGenerate and KindRewrite name the generation's LLM calls.
const (
	KindGenerate = "assignment.generate"
	KindRewrite  = "assignment.generate_rewrite"
)

// itemsSchema is what the model must answer: an array of questions.
var itemsSchema = structured.MustCompile("generated_questions", `{
  "type": "array",
  "minItems": 1,
  "items": {
    "type": "object",
    "required": ["stem", "answer", "solution", "type"],
    "properties": {
      "stem": {"type": "string", "minLength": 1},
      "options": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": ["string", "number"]}}, {"type": "null"}]},
      "answer": {"type": ["string", "number"]},
      "solution": {"type": "string"},
      "type": {"type": "string"},
      "difficulty": {"type": ["string", "null"]}
    }
  }
}`)

// item is one generated question.
type item struct {
	Stem       string          `json:"stem"`
	Options    json.RawMessage `json:"options,omitempty"`
	Answer     any             `json:"answer"`
	Solution   string          `json:"solution"`
	Type       string          `json:"type"`
	Difficulty *string         `json:"difficulty,omitempty"`
}

// figureWords finds words that refer to a figure the question does not
// have; figurePhrase is what the substitution pass deletes.
var (
	figureWords  = regexp.MustCompile(`如图|见图|下图|图中|图示|上图|图\s*\d+`)
	figurePhrase = regexp.MustCompile(`(?:(?:如|见|下|上)?图\s*\d+(?:所示)?|(?:如|见|下|上)图(?:所示)?|图中|图示)[，,：:]?\s*`)
)

const systemPrompt = "你是高中物理命题老师，只输出 JSON。"

// llmItems asks the model for n questions of one knowledge point and
// writes them as GEN-<kp>-LLM-NN (numbered after the files earlier runs
// left, so nothing is overwritten). At most n items are kept.
func (s *Service) llmItems(ctx context.Context, p *plan, kp string, n int) ([]Row, error) {
	prompt := fmt.Sprintf(`请为知识点「%s」编写 %d 道高中物理练习题，难度：basic。
要求：
1. 每道题自成一体，无需配图即可作答；不得出现“如图”“见图”“下图”“图中”“图示”“上图”“图1”等指代图形的词语，需要的情景用文字描述清楚。
2. 语言简洁，使用中文。
3. 只输出一个 JSON 数组，不要输出其他内容。每一项包含 stem（题干）、options（选项，可选）、answer（答案）、solution（解析）、type（题型），可选 difficulty。
JSON Schema：%s`, kp, n, itemsSchema.Text())
	items, err := s.askItems(ctx, KindGenerate, prompt)
	if err != nil {
		return nil, err
	}
	if len(items) > n {
		items = items[:n]
	}
	items = s.withoutFigures(ctx, items)

	rel := "assignments/" + p.AssignmentID
	k := slug(kp)
	next := nextLLMNumber(filepath.Join(p.dir, "generated_stems"), "GEN-"+k+"-LLM-")
	var rows []Row
	for i, it := range items {
		id := fmt.Sprintf("GEN-%s-LLM-%02d", k, next+i)
		stem := textcut.Short(strings.TrimSpace(it.Stem), maxStemRunes)
		if opts := optionsText(it.Options); opts != "" {
			stem += "\n" + textcut.Short(opts, maxStemRunes)
		}
		sol := "答案: " + textcut.Short(answerText(it.Answer), maxStemRunes) + "\n解析: " + textcut.Short(it.Solution, maxStemRunes)
		if err := atomicfile.WriteFile(filepath.Join(p.dir, "generated_stems", id+".md"), []byte(stem), 0o644); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "write generated question failed")
		}
		if err := atomicfile.WriteFile(filepath.Join(p.dir, "generated_solutions", id+".md"), []byte(sol), 0o644); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "write generated question failed")
		}
		diff := Basic
		if it.Difficulty != nil {
			if l := level(*it.Difficulty); l != "" {
				diff = l
			}
		}
		typ := strings.TrimSpace(it.Type)
		if typ == "" || !validKP(typ) {
			typ = "generated"
		}
		rows = append(rows, Row{QuestionID: id, KPID: kp, Difficulty: diff, Type: typ,
			StemRef: rel + "/generated_stems/" + id + ".md", AnswerRef: rel + "/generated_solutions/" + id + ".md",
			Source: "generated", Tags: "LLM"})
	}
	return rows, nil
}

// maxStemRunes bounds a generated stem, option list, answer or solution.
const maxStemRunes = 4000

// askItems makes one call and reads its array of questions.
func (s *Service) askItems(ctx context.Context, kind, prompt string) ([]item, error) {
	resp, err := s.llm.Chat(ctx, llm.Request{
		Messages: []llm.Message{{Role: "system", Content: systemPrompt}, {Role: "user", Content: prompt}},
		Role:     limits.RoleTeacher, Kind: kind,
	})
	if err != nil {
		return nil, err
	}
	var items []item
	err = itemsSchema.Decode(resp.Content, &items)
	if err != nil {
		// structured.Extract prefers an object span, so an array with a
		// single object inside prose is read as that object: try the
		// bracket span too.
		c := resp.Content
		if i, j := strings.Index(c, "["), strings.LastIndex(c, "]"); i >= 0 && j > i {
			if itemsSchema.Decode(c[i:j+1], &items) == nil {
				return items, nil
			}
		}
		return nil, err
	}
	return items, nil
}

// withoutFigures makes stems that refer to figures self-contained: one
// rewrite call, accepted when it returns as many items and none of them
// still refers to a figure; otherwise (or when the call fails) the figure
// phrases are deleted and whitespace collapsed.
func (s *Service) withoutFigures(ctx context.Context, items []item) []item {
	if !anyFigure(items) {
		return items
	}
	data, _ := json.Marshal(items)
	prompt := "下面是题目 JSON 数组。请改写每一项的 stem，使其不依赖图片：不得出现“如图”“见图”“下图”“图中”“图示”“上图”“图1”等词语，" +
		"用文字把情景描述完整；保留所有数字和其他字段不变；只输出严格的 JSON 数组。\n" +
		structured.Truncate(string(data), 12000)
	rewritten, err := s.askItems(ctx, KindRewrite, prompt)
	if err == nil && len(rewritten) == len(items) && !anyFigure(rewritten) {
		return rewritten
	}
	if err != nil {
		s.log.Info("figure rewrite failed; substituting", "err", err)
	}
	out := make([]item, len(items))
	for i, it := range items {
		it.Stem = strings.Join(strings.Fields(figurePhrase.ReplaceAllString(it.Stem, "")), " ")
		it.Stem = strings.TrimLeft(it.Stem, "，,：: ")
		out[i] = it
	}
	return out
}

func anyFigure(items []item) bool {
	for _, it := range items {
		if figureWords.MatchString(it.Stem) {
			return true
		}
	}
	return false
}

// optionsText is the options as lines (a list joined by newlines).
func optionsText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return strings.TrimSpace(str)
	}
	var list []any
	if json.Unmarshal(raw, &list) == nil {
		lines := make([]string, 0, len(list))
		for _, v := range list {
			if t := strings.TrimSpace(answerText(v)); t != "" {
				lines = append(lines, t)
			}
		}
		return strings.Join(lines, "\n")
	}
	return ""
}

func answerText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// nextLLMNumber is one past the highest NN of dir/<prefix>NN.md.
func nextLLMNumber(dir, prefix string) int {
	entries, _ := os.ReadDir(dir)
	most := 0
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSuffix(rest, ".md")); err == nil && n > most {
			most = n
		}
	}
	return most + 1
}
