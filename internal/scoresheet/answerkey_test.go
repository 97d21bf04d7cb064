package scoresheet

import "testing"

func TestParseAnswerKey(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       AnswerKey
		warn       bool
	}{
		{"lines", "1. A\n2) c\r\n3、B\n4：D\n5 b\n 9. AC \n10,DB\n11(1) B\n12a: ab\n答案如下\n",
			AnswerKey{"Q1": "A", "Q2": "C", "Q3": "B", "Q4": "D", "Q5": "B", "Q9": "AC", "Q10": "BD", "Q11_1": "B", "Q12_a": "AB"}, false},
		{"inline", "选择题答案：1.A 2.C 3、B 9:AC 10．ＢＤ，11(2).c",
			AnswerKey{"Q1": "A", "Q2": "C", "Q3": "B", "Q9": "AC", "Q10": "BD", "Q11_2": "C"}, false},
		{"inline needs a separator", "1 A 2 B 3.C", AnswerKey{"Q3": "C"}, false},
		{"inline boundaries", "x21.A (1)B 1234.C 5.ABCDEFGHI 6.D", AnswerKey{"Q21": "A", "Q6": "D"}, false},
		{"later overwrites", "1. A\n1. B\n", AnswerKey{"Q1": "B"}, false},
		{"mixed line and inline forms", "1. A\n2.B 3.C\n", AnswerKey{"Q1": "A", "Q2": "B", "Q3": "C"}, false},
		{"prose is no inline answer", "答案\n1. A\n共 10 题，每题 4 分。\n", AnswerKey{"Q1": "A"}, false},
		{"too many letters", "1. ABCDEFGHI\n", AnswerKey{}, true},
		{"garbage", "the quick brown fox\n12345\n", AnswerKey{}, true},
		{"empty", " \n\u3000", AnswerKey{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warn := ParseAnswerKey(tc.text)
			if !mapsEqual(got, tc.want) {
				t.Errorf("key %v, want %v", got, tc.want)
			}
			if (len(warn) > 0) != tc.warn {
				t.Errorf("warnings %q, want any: %v", warn, tc.warn)
			}
		})
	}
}

func TestScoreAnswer(t *testing.T) {
	for _, tc := range []struct {
		answer, key string
		max, want   float64
		full        bool
	}{
		{"A", "AC", 2, 1, false},
		{"AC", "AC", 2, 2, true},
		{"CA", "AC", 2, 2, true},
		{"ca", "AC", 2, 2, true},
		{"AAC", "AC", 2, 2, true},
		{"AB", "AC", 2, 0, false},
		{"ACD", "AC", 2, 0, false},
		{"", "AC", 2, 0, false},
		{"B", "B", 4, 4, true},
		{"BC", "B", 4, 0, false},
		{"", "B", 4, 0, false},
		{"B", "", 4, 0, false},
		{"", "", 4, 0, false},
		{"D", "BD", 5, 2.5, false},
	} {
		got, full := ScoreAnswer(tc.answer, tc.key, tc.max)
		if got != tc.want || full != tc.full {
			t.Errorf("ScoreAnswer(%q, %q, %v) = %v %v, want %v %v", tc.answer, tc.key, tc.max, got, full, tc.want, tc.full)
		}
	}
}
