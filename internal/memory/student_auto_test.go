package memory

import (
	"testing"
	"time"
)

// Student turns → automatic student memory proposals: what each kind of
// turn becomes, and what is never proposed.
func TestObserveStudentTurnTable(t *testing.T) {
	cases := []struct {
		text, reply string
		wantType    string // "" → no proposal
		wantReason  string
	}{
		{"我的目标是期末物理考到九十以上", "好的", "long_term_goal", ""},
		{"我希望能提高电学部分的理解", "好的", "long_term_goal", ""},
		{"以后讲题请一步一步来，我跟得上", "好的", "learning_preference", ""},
		{"我更喜欢先看例题再听讲解，这样记得住", "好的", "learning_preference", ""},
		{"我总是搞混加速度和速度的方向", "我们来区分", "stable_misconception", ""},
		{"这个方法很好，用图像法终于理解了", "很高兴", "effective_intervention", ""},
		{"这个方法很好，用图像法终于理解了", "", "", "no_signal"},
		{"开始今天作业，第一题是什么呢", "第一题…", "", "homework"},
		{"A. 2 m/s B. 4 m/s 选哪个好呢", "…", "", "homework"},
		{"计算这道题的答案和详细过程", "…", "", "homework"},
		{"好的", "…", "", "too_short"},
		{"今天天气不错，我们班下午有体育课", "…", "", "no_signal"},
		{"我的目标是考到 90 分以上，排名进前十", "…", "", "blocked"},
		{"以后有问题请加我微信一步一步讲给我", "…", "", "blocked"},
	}
	f := setup(t, Config{})
	for _, c := range cases {
		res, err := f.svc.ObserveStudentTurn("teacher", "s_li", c.text, c.reply)
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		switch {
		case c.wantType == "" && (res.Created || res.Reason != c.wantReason):
			t.Errorf("%q: %+v, want no proposal (%s)", c.text, res, c.wantReason)
		case c.wantType != "" && (!res.Created || res.Proposal.MemoryType != c.wantType ||
			res.Proposal.Status != StatusProposed || res.Proposal.Source != SourceAutoStudentTurn):
			t.Errorf("%q: %+v, want a proposed %s", c.text, res, c.wantType)
		}
	}
}

// At most six a day per student, each text once; the next day counts anew.
func TestObserveStudentTurnQuotaAndDuplicates(t *testing.T) {
	f := setup(t, Config{})
	say := func(student, text string) StudentAutoResult {
		t.Helper()
		res, err := f.svc.ObserveStudentTurn("teacher", student, text, "好")
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if r := say("s_li", "我总是搞混电场和电势的概念"); !r.Created {
		t.Fatalf("first: %+v", r)
	}
	if r := say("s_li", "我总是搞混电场和电势的概念"); r.Reason != "duplicate" {
		t.Errorf("repeat: %+v, want duplicate", r)
	}
	for i := range 5 {
		f.clock.advance(time.Minute)
		if r := say("s_li", "我总是搞混第"+string(rune('一'+i))+"种情况的受力方向"); !r.Created {
			t.Fatalf("turn %d: %+v", i, r)
		}
	}
	if r := say("s_li", "我总是搞混摩擦力的方向判断"); r.Reason != "daily_quota_reached" {
		t.Errorf("seventh: %+v, want daily_quota_reached", r)
	}
	if r := say("s_wang", "我总是搞混摩擦力的方向判断"); !r.Created {
		t.Errorf("another student: %+v", r)
	}
	f.clock.advance(24 * time.Hour)
	if r := say("s_li", "我总是搞混摩擦力的方向判断"); !r.Created {
		t.Errorf("next day: %+v", r)
	}
	list, err := f.svc.ListStudent("teacher", "s_li", "", 50)
	if err != nil || len(list) != 7 {
		t.Errorf("s_li's proposals: %d, %v; want 7", len(list), err)
	}
}
