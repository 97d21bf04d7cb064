package memory

import (
	"errors"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/textcut"
)

// Automatic student memory proposals from a student's chat turns
// (agent-extras.md §2.7): a turn that states a goal, a learning
// preference, a lasting confusion or what helped becomes a proposal for
// the teacher to review (never applied by itself). Homework interaction is
// not a memory; scores, rankings and contact data are refused by the same
// risk filter as manual proposals.
const (
	// SourceAutoStudentTurn marks a proposal made from a student's turn.
	SourceAutoStudentTurn = "auto_student_turn"
	studentAutoMinChars   = 12  // the text's runes, spaces left out
	studentAutoPerDay     = 6   // per student per day
	studentAutoContent    = 260 // runes of the text kept
)

var (
	// homework interaction: the assignment flow's commands, choice
	// options, "solve / compute … answer / working" requests.
	studentHomework = regexp.MustCompile(`(?i)开始今天作业|继续今天作业|诊断问题|训练问题|(^|\s)[A-D][.．、]|(?:求|计算|算出|选择|填空|解答|作答|choice|fill|answer).{0,24}(?:答案|过程)`)
	studentTypes    = []struct {
		memoryType string
		re         *regexp.Regexp
		needsReply bool
	}{
		{"long_term_goal", regexp.MustCompile(`我的目标|目标是|我想考|我要考|希望(?:能|可以)?(?:考|提高|达到|进)|争取(?:考|达到)|想提高`), false},
		{"learning_preference", regexp.MustCompile(`(?:以后|今后|我(?:更)?(?:喜欢|习惯|希望)|请(?:你)?(?:以后|都)).{0,30}(?:一步一步|分步|步骤|简短|简洁|简单点|详细|举例|例子|例题|总结|归纳|图)`), false},
		{"stable_misconception", regexp.MustCompile(`(?:总是|老是|经常|一直|常常)(?:搞混|混淆|分不清|弄混|弄错|搞错|记错|搞不清)`), false},
		{"effective_intervention", regexp.MustCompile(`这个方法(?:有用|很好|好用|管用|清楚)|这样(?:讲|说|解释)?(?:更|很|就)?(?:清楚|明白|好懂)|终于(?:懂|明白)了|这种讲法`), true},
	}
)

// StudentAutoResult is what ObserveStudentTurn did.
type StudentAutoResult struct {
	Created bool
	// Reason says why not: too_short, homework, no_signal, blocked,
	// daily_quota_reached, duplicate.
	Reason   string
	Proposal *StudentProposal
}

// ObserveStudentTurn proposes a student memory from one finished student
// turn, owned by teacherID (the tenant's teacher of its students): at most
// 6 a day per student, the same text for the same student once.
func (s *Service) ObserveStudentTurn(teacherID, studentID, userText, reply string) (StudentAutoResult, error) {
	text := strings.Join(strings.Fields(userText), " ")
	if utf8.RuneCountInString(strings.ReplaceAll(text, " ", "")) < studentAutoMinChars {
		return StudentAutoResult{Reason: "too_short"}, nil
	}
	if studentHomework.MatchString(text) {
		return StudentAutoResult{Reason: "homework"}, nil
	}
	memoryType := ""
	for _, t := range studentTypes {
		if t.re.MatchString(text) && (!t.needsReply || strings.TrimSpace(reply) != "") {
			memoryType = t.memoryType
			break
		}
	}
	if memoryType == "" {
		return StudentAutoResult{Reason: "no_signal"}, nil
	}
	content := textcut.Head(text, studentAutoContent)
	today := s.today()
	p, reason, err := s.proposeStudent(teacherID, StudentInput{StudentID: studentID, MemoryType: memoryType, Content: content,
		Source: SourceAutoStudentTurn}, func(existing []StudentProposal) string {
		count := 0
		for _, e := range existing {
			if e.StudentID != studentID || !strings.HasPrefix(e.Source, "auto_") {
				continue
			}
			if e.Content == content && e.Status != StatusDeleted {
				return "duplicate"
			}
			if strings.HasPrefix(e.CreatedAt, today) {
				count++
			}
		}
		if count >= studentAutoPerDay {
			return "daily_quota_reached"
		}
		return ""
	})
	var fe *fault.Error
	switch {
	case errors.As(err, &fe) && fe.Detail == "content_blocked":
		return StudentAutoResult{Reason: "blocked"}, nil
	case err != nil:
		return StudentAutoResult{}, err
	case reason != "":
		return StudentAutoResult{Reason: reason}, nil
	}
	return StudentAutoResult{Created: true, Proposal: &p}, nil
}
