package assignupload

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitQuestions(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       []numbered
	}{
		{"none", "本节课复习。\n没有编号。", nil},
		{"empty", "", nil},
		{"arabic dot", "1. 甲\n2. 乙\n3. 丙", []numbered{{1, "甲"}, {2, "乙"}, {3, "丙"}}},
		{"full-width and 、", "1．甲\n2、乙\n３．丙", []numbered{{1, "甲"}, {2, "乙"}, {3, "丙"}}},
		{"title dropped, lines follow", "练习卷\n\n1. 甲\n  续行\n\n2. 乙", []numbered{{1, "甲\n  续行"}, {2, "乙"}}},
		{"decimal is not a number mark", "1. 速度是\n1.5 m/s 时\n2. 乙", []numbered{{1, "速度是\n1.5 m/s 时"}, {2, "乙"}}},
		{"sub-questions stay", "1. 计算：\n(1) 2+3\n(2) 4+5\n2. 化简", []numbered{{1, "计算：\n(1) 2+3\n(2) 4+5"}, {2, "化简"}}},
		{"wrapped alone", "（1）甲\n（2）乙", []numbered{{1, "甲"}, {2, "乙"}}},
		{"paren close", "1) 甲\n2） 乙", []numbered{{1, "甲"}, {2, "乙"}}},
		{"di ti", "第1题 甲\n第 2 题：乙\n第三题、丙", []numbered{{1, "甲"}, {2, "乙"}, {3, "丙"}}},
		{"section headings dropped", "一、选择题\n1. 甲\n2. 乙\n二、填空题\n3. 丙", []numbered{{1, "甲"}, {2, "乙"}, {3, "丙"}}},
		{"chinese numerals alone", "一、甲\n二、乙\n十一、丙", []numbered{{1, "甲"}, {2, "乙\n十一、丙"}}},
		{"chinese up to ten", "八、甲\n九、乙\n十、丙\n十一、丁", []numbered{{8, "甲"}, {9, "乙"}, {10, "丙"}, {11, "丁"}}},
		{"a number out of sequence stays", "1. 甲\n5. 不是题号\n2. 乙", []numbered{{1, "甲\n5. 不是题号"}, {2, "乙"}}},
		{"gap of one lost question", "1. 甲\n3. 丙", []numbered{{1, "甲"}, {3, "丙"}}},
		{"four digits are a year", "2024. 年份\n1. 甲", []numbered{{1, "甲"}}},
		{"markdown", "## 1. 甲\n**2.** 乙\n> 3、丙", []numbered{{1, "甲"}, {2, "乙"}, {3, "丙"}}},
		{"empty question kept", "1.\n2. 乙", []numbered{{1, ""}, {2, "乙"}}},
		{"starts past 1", "7. 甲\n8. 乙", []numbered{{7, "甲"}, {8, "乙"}}},
		{"windows newlines", "1. 甲\r\n2. 乙\r\n", []numbered{{1, "甲"}, {2, "乙"}}},
		{"longest style wins", "(1) 甲\n1. 乙\n2. 丙\n3. 丁", []numbered{{1, "乙"}, {2, "丙"}, {3, "丁"}}},
		{"not a numeral", "一元二次方程\n1. 甲", []numbered{{1, "甲"}}},
		{"zero is not a number", "0. 甲\n1. 乙", []numbered{{1, "乙"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := splitQuestions(c.text); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestSplitAnswers(t *testing.T) {
	for _, c := range []struct {
		text string
		want map[int]string
	}{
		{"1. B 2. C  3. A", map[int]string{1: "B", 2: "C", 3: "A"}},
		{"1. B\n2. 5 m/s² 3. 4 s", map[int]string{1: "B", 2: "5 m/s²", 3: "4 s"}},
		{"1. v = 3. 5 m/s 2. C", map[int]string{1: "v = 3. 5 m/s", 2: "C"}},
		{"1. 3.5 m 2. C", map[int]string{1: "3.5 m", 2: "C"}},
		{"答案\n1、A 2、B", map[int]string{1: "A", 2: "B"}},
		{"没有编号", map[int]string{}},
	} {
		if got := splitAnswers(c.text); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %v, want %v", c.text, got, c.want)
		}
	}
}

func TestRuleQuestions(t *testing.T) {
	qs := ruleQuestions(paperMD, answersMD)
	if len(qs) != 3 || qs[0].Score != 3 || qs[0].Answer != "B" || qs[1].Answer != "5 m/s²" || qs[2].Score != 0 {
		t.Fatalf("%+v", qs)
	}
}

// FuzzSplitQuestions: any text splits without panicking into questions
// whose numbers increase, whose texts come from the input (valid UTF-8 in,
// valid out), and no more of them than lines.
func FuzzSplitQuestions(f *testing.F) {
	for _, seed := range []string{
		"", "1. 甲\n2. 乙", paperMD, answersMD, "一、选择题\n1. 甲\n二、\n2.", "第十二题 x\n第十三题 y",
		"(1)(2)(3)\n（１）ａ", "1.\n1.\n1.", "九百九十九、x\n一百、y", "十十、\n百、\n零、", "1. 3.5 2. 4",
		"\xff\xfe1. bad utf8\n2. ok", "##\n**\n>", "999. x\n1000. y",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		qs := splitQuestions(text)
		lines := strings.Count(text, "\n") + strings.Count(text, "\r") + 1
		if len(qs) > lines {
			t.Fatalf("%d questions from %d lines", len(qs), lines)
		}
		for i, q := range qs {
			if q.No < 1 || q.No > 999 {
				t.Fatalf("number %d", q.No)
			}
			if i > 0 && q.No <= qs[i-1].No {
				t.Fatalf("numbers not increasing: %v", qs)
			}
			if len(q.Text) > len(text) {
				t.Fatalf("text longer than the input")
			}
			if utf8.ValidString(text) && !utf8.ValidString(q.Text) {
				t.Fatalf("invalid UTF-8 out of valid input: %q", q.Text)
			}
			if first, _, _ := strings.Cut(q.Text, "\n"); !strings.Contains(text, strings.TrimSpace(first)) {
				t.Fatalf("text %q not from the input", first)
			}
		}
		for n, a := range splitAnswers(text) {
			if n < 1 || n > 999 || len(a) > len(text) {
				t.Fatalf("answer %d %q", n, a)
			}
		}
	})
}

func TestNormalizeDifficulty(t *testing.T) {
	for in, want := range map[string]string{
		"": "basic", "  ": "basic", "basic": "basic", "Medium": "medium", " ADVANCED ": "advanced", "challenge": "challenge",
		"easy": "basic", "Hard": "advanced", "very hard": "challenge", "Very_Hard": "challenge", "intermediate": "medium",
		"expert": "challenge", "基础": "basic", "中等": "medium", "压轴": "challenge", "压轴题": "challenge",
		"较难/挑战": "advanced", "挑战题": "challenge", "一般难度": "medium", "提高题": "medium", "拔高": "advanced",
		"偏难 hard": "advanced", "Very Hard!": "basic", "unknown": "basic", "中等偏难": "medium",
	} {
		if got := normalizeDifficulty(in); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}

func TestMissingKeys(t *testing.T) {
	all := []string{"subject", "topic", "grade_level", "class_level", "core_concepts", "typical_problem", "misconceptions", "duration_minutes", "preferences"}
	full := fullRequirements()
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for key, val := range full {
			m[key] = val
		}
		m[k] = v
		return m
	}
	for _, c := range []struct {
		name string
		req  map[string]any
		want []string
	}{
		{"empty", nil, all},
		{"full", full, []string{}},
		{"nine concepts pass (no upper cap)", with("core_concepts", "a,b,c,d,e,f,g,h,i"), []string{}},
		{"two concepts", with("core_concepts", []any{"a", "b"}), []string{"core_concepts"}},
		{"three misconceptions", with("misconceptions", "a;b;c"), []string{"misconceptions"}},
		{"class level alias", with("class_level", "强"), []string{}},
		{"class level unknown", with("class_level", "普通"), []string{"class_level"}},
		{"duration 30", with("duration_minutes", 30.0), []string{"duration_minutes"}},
		{"duration text", with("duration_minutes", "60 分钟"), []string{}},
		{"duration alias", func() map[string]any { m := with("duration_minutes", nil); m["duration"] = "20"; return m }(), []string{}},
		{"preference letters and names", with("preferences", "A，生活应用;F错题反思"), []string{}},
		{"unknown preference", with("preferences", []any{"A基础", "G"}), []string{"preferences"}},
		{"blank subject", with("subject", "  "), []string{"subject"}},
	} {
		if got := missingKeys(c.req); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMergeRequirements(t *testing.T) {
	base := map[string]any{"subject": "物理", "core_concepts": []any{"惯性"}, "misconceptions": []any{"a", "b", "c"}, "duration_minutes": 0.0}
	update := map[string]any{"subject": "化学", "topic": "力", "core_concepts": "惯性, 加速度", "misconceptions": []any{"d"},
		"duration_minutes": "40", "grade_level": "", "class_level": nil, "extra_constraints": "无", "unknown_key": "x"}
	got := mergeRequirements(base, update, false)
	want := map[string]any{"subject": "物理", "topic": "力", "grade_level": "", "class_level": "", "core_concepts": []any{"惯性", "加速度"},
		"typical_problem": "", "misconceptions": []any{"a", "b", "c"}, "duration_minutes": 40, "preferences": []any{}, "extra_constraints": "无"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fill only:\n got  %v\n want %v", got, want)
	}
	got = mergeRequirements(base, update, true)
	if got["subject"] != "化学" || !reflect.DeepEqual(got["misconceptions"], []any{"d"}) || got["grade_level"] != "" || got["unknown_key"] != nil {
		t.Errorf("overwrite: %v", got)
	}
}
