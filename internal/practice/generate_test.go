package practice

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/fault"
)

func TestComputeMix(t *testing.T) {
	for total, want := range map[int]Mix{
		0: {}, 1: {1, 0, 0}, 2: {1, 1, 0}, 3: {1, 1, 1}, 4: {2, 1, 1}, 5: {3, 1, 1}, 6: {4, 1, 1},
		7: {4, 2, 1}, 8: {5, 2, 1}, 9: {5, 3, 1}, 10: {6, 3, 1}, 15: {9, 5, 1}, 20: {12, 6, 2},
	} {
		got := ComputeMix(total)
		if got != want || got.Basic+got.Medium+got.Advanced != total {
			t.Errorf("ComputeMix(%d) = %+v, want %+v", total, got, want)
		}
	}
}

// The bank of the selection tests.
var selectionBank = []bankRow{
	{"K1-B01", "KP1", "basic", "基础题一"}, {"K1-B02", "KP1", "Basic", ""}, {"K1-B03", "KP1", "basic", ""},
	{"K1-B04", "KP1", "basic", ""}, {"K1-M01", "KP1", "medium", ""}, {"K1-M02", "KP1", "medium", ""},
	{"K1-C01", "KP1", "challenge", ""}, {"K1-X01", "KP1", "unusual", ""},
	{"K2-B01", "KP2", "basic", ""}, {"K2-Z01", "KP2", "", ""},
}

// Selection from the bank: the mix per knowledge point (challenge counted
// as advanced), the fill from any level, placeholders for the rest,
// explicit ids (bank rows or placeholders), hybrid order, and a missing
// bank treated as empty.
func TestSelection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noBank  bool
		req     GenerateRequest
		want    []string
		mode    string
		wantErr string
	}{
		{name: "mix of five", req: GenerateRequest{KPs: []string{"KP1"}, PerKP: 5},
			want: []string{"K1-B01", "K1-B02", "K1-B03", "K1-M01", "K1-C01"}, mode: "kp"},
		{name: "fill from any level", req: GenerateRequest{KPs: []string{"KP1"}, PerKP: 8},
			want: []string{"K1-B01", "K1-B02", "K1-B03", "K1-B04", "K1-M01", "K1-M02", "K1-C01", "K1-X01"}, mode: "kp"},
		{name: "placeholders for the gap", req: GenerateRequest{KPs: []string{"KP2"}, PerKP: 4},
			want: []string{"K2-B01", "K2-Z01", "GEN-KP2-basic-01", "GEN-KP2-basic-02"}, mode: "kp"},
		{name: "two kps", req: GenerateRequest{KPs: []string{"KP1", "KP2", "KP1"}, PerKP: 1},
			want: []string{"K1-B01", "K2-B01"}, mode: "kp"},
		{name: "explicit ids", req: GenerateRequest{QuestionIDs: []string{"K1-M02", "NEWQ", "K1-M02"}, KPs: []string{"KP1"}, Mode: "explicit", PerKP: 5},
			want: []string{"K1-M02", "NEWQ"}, mode: "explicit"},
		{name: "hybrid inferred", req: GenerateRequest{QuestionIDs: []string{"K1-B01"}, KPs: []string{"KP1"}, PerKP: 2},
			want: []string{"K1-B01", "K1-B02", "K1-M01"}, mode: "hybrid"},
		{name: "mode inferred explicit", req: GenerateRequest{QuestionIDs: []string{"K2-Z01"}, PerKP: 2},
			want: []string{"K2-Z01"}, mode: "explicit"},
		{name: "no bank", noBank: true, req: GenerateRequest{KPs: []string{"牛顿 第二定律"}, PerKP: 3},
			want: []string{"GEN-牛顿_第二定律-basic-01", "GEN-牛顿_第二定律-basic-02", "GEN-牛顿_第二定律-basic-03"}, mode: "kp"},
		{name: "nothing asked", req: GenerateRequest{PerKP: 3}, wantErr: "Provide kp or question_ids or explicit questions file."},
		{name: "kp mode without kp", req: GenerateRequest{QuestionIDs: []string{"K1-B01"}, Mode: "kp", PerKP: 3}, wantErr: "Mode kp requires kp."},
		{name: "nothing selected", req: GenerateRequest{KPs: []string{"KP1"}, PerKP: 0}, wantErr: "No questions selected."},
		{name: "per_kp too big", req: GenerateRequest{KPs: []string{"KP1"}, PerKP: 21}, wantErr: "per_kp must be between 0 and 20"},
		{name: "bad question id", req: GenerateRequest{QuestionIDs: []string{"../x"}}, wantErr: `invalid question_ids: "../x"`},
		{name: "kp too long", req: GenerateRequest{KPs: []string{strings.Repeat("长", 65)}, PerKP: 1}, wantErr: "invalid kp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			if !tc.noBank {
				writeBank(t, data, selectionBank...)
			}
			s := newService(t, data)
			req := tc.req
			req.AssignmentID, req.Source = "A1", "auto"
			res, err := s.Generate(context.Background(), req)
			if tc.wantErr != "" {
				if fault.CodeOf(err) != fault.Invalid || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want 400 %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rows := questions(t, data, "A1")
			if got := idsOf(rows); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("selected %v, want %v", got, tc.want)
			}
			if res.QuestionCount != len(tc.want) || !strings.HasPrefix(res.Output, "[OK] Wrote assignments/A1/questions.csv") {
				t.Fatalf("result %+v", res)
			}
			meta := readSmallJSON(filepath.Join(data, "assignments", "A1", "meta.json"))
			if meta["mode"] != tc.mode || meta["date"] != testDay || meta["scope"] != "public" ||
				meta["completion_policy"] == nil || meta["expected_students"] == nil {
				t.Fatalf("meta %v", meta)
			}
			header := strings.SplitN(readText(t, data, "assignments/A1/questions.csv"), "\n", 2)[0]
			if header != strings.Join(Columns, ",") {
				t.Fatalf("header %q", header)
			}
			for _, r := range rows {
				if strings.HasPrefix(r.QuestionID, "GEN-") {
					stem := readText(t, data, r.StemRef)
					if r.StemRef != "assignments/A1/generated_stems/"+r.QuestionID+".md" ||
						!strings.HasPrefix(stem, "【待生成】"+r.KPID+"（basic）习题") ||
						readText(t, data, r.AnswerRef) != "【待生成】参考答案\n" || r.Type != "generated" {
						t.Fatalf("placeholder %+v: %q", r, stem)
					}
				}
				if r.QuestionID == "NEWQ" && (r.Type != "explicit_placeholder" || r.Tags != "explicit:missing" ||
					!strings.HasPrefix(readText(t, data, r.StemRef), "【待录入】题目 NEWQ")) {
					t.Fatalf("explicit placeholder %+v", r)
				}
			}
			md := readText(t, data, "assignments/A1/assignment.md")
			if !strings.HasPrefix(md, "Assignment ID: A1\nDate: "+testDay+"\n") || !strings.Contains(md, "Items:\n- "+tc.want[0]+" (") {
				t.Fatalf("assignment.md:\n%s", md)
			}
		})
	}
}

// Recency: ids of the other assignments dated within 14 days (meta date,
// else generated_at; later dates too) are avoided; older ones, folders
// without a date (whatever their mtime) and the assignment being rebuilt
// are not.
func TestRecencyFromOtherAssignmentsDates(t *testing.T) {
	data := t.TempDir()
	var bank []bankRow
	for _, id := range []string{"B01", "B02", "B03", "B04", "B05", "B06"} {
		bank = append(bank, bankRow{id, "KP1", "basic", ""})
	}
	writeBank(t, data, bank...)
	csvOf := func(ids ...string) string {
		var rows []Row
		for _, id := range ids {
			rows = append(rows, Row{QuestionID: id, KPID: "KP1", Difficulty: "basic"})
		}
		return string(encodeRows(rows))
	}
	writeJSON(t, data, "assignments/OLD/meta.json", map[string]any{"date": "2026-11-10"})
	writeFile(t, data, "assignments/OLD/questions.csv", csvOf("B01"))
	writeJSON(t, data, "assignments/RECENT/meta.json", map[string]any{"date": "2026-11-28"})
	writeFile(t, data, "assignments/RECENT/questions.csv", csvOf("B02"))
	writeJSON(t, data, "assignments/GENAT/meta.json", map[string]any{"generated_at": "2026-11-30T08:00:00", "question_ids": []string{"B03"}})
	writeFile(t, data, "assignments/NOMETA/questions.csv", csvOf("B04")) // fresh mtime, no date
	writeJSON(t, data, "assignments/FUTURE/meta.json", map[string]any{"date": "2026-12-05"})
	writeFile(t, data, "assignments/FUTURE/questions.csv", csvOf("B05"))
	writeJSON(t, data, "assignments/A1/meta.json", map[string]any{"date": testDay}) // the one rebuilt
	writeFile(t, data, "assignments/A1/questions.csv", csvOf("B06"))

	s := newService(t, data)
	if _, err := s.Generate(context.Background(), GenerateRequest{AssignmentID: "A1", KPs: []string{"KP1"}, PerKP: 4, Source: "auto"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"B01", "B04", "B06", "GEN-KP1-basic-01"}
	if got := idsOf(questions(t, data, "A1")); !reflect.DeepEqual(got, want) {
		t.Fatalf("selected %v, want %v", got, want)
	}
}

// Explicit rows: explicit_questions.csv rows come first as they are (a
// ref outside DATA_DIR dropped); an explicit placeholder's files are
// created once and a teacher's edit survives a rebuild.
func TestExplicitRowsAndPlaceholders(t *testing.T) {
	data := t.TempDir()
	writeBank(t, data, selectionBank...)
	writeFile(t, data, "assignments/A1/explicit_stems/IMG-A1-001.md", "拍照录入的题目")
	writeFile(t, data, "assignments/A1/explicit_questions.csv", string(encodeRows([]Row{
		{QuestionID: "IMG-A1-001", KPID: "KP1", Difficulty: "basic", Type: "explicit_ocr", StemRef: "data/assignments/A1/explicit_stems/IMG-A1-001.md", Source: "teacher", Tags: "ocr"},
		{QuestionID: "IMG-A1-002", KPID: "KP1", Difficulty: "basic", Type: "explicit_ocr", StemRef: "/etc/passwd", Source: "teacher"},
	})))
	s := newService(t, data)
	req := GenerateRequest{AssignmentID: "A1", QuestionIDs: []string{"NEWQ"}, PerKP: 5, Source: "auto"}
	res, err := s.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	rows := questions(t, data, "A1")
	if got := idsOf(rows); !reflect.DeepEqual(got, []string{"IMG-A1-001", "IMG-A1-002", "NEWQ"}) {
		t.Fatalf("selected %v", got)
	}
	if rows[0].StemRef != "assignments/A1/explicit_stems/IMG-A1-001.md" || rows[1].StemRef != "" ||
		!strings.Contains(res.Output, "[WARN] IMG-A1-002: a ref outside the data directory was dropped") {
		t.Fatalf("refs %+v\n%s", rows, res.Output)
	}
	writeFile(t, data, "assignments/A1/explicit_stems/NEWQ.md", "老师补充的题干")
	if _, err := s.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, data, "assignments/A1/explicit_stems/NEWQ.md"); got != "老师补充的题干" {
		t.Fatalf("edited stem overwritten: %q", got)
	}
}

// Core-example variants: {name} filled in, numbers plus the variant's
// number, under assignments/generated_from_core/<id>/ with index.json.
func TestCoreVariants(t *testing.T) {
	data := t.TempDir()
	writeFile(t, data, "core_examples/stems/CE1.md", "质量为 {m} kg 的物体受到 {F} N 的力，g 取 {g}，{missing} 不变。")
	writeFile(t, data, "core_examples/variants/CE1.md", "# 变量\nm = 2\nF = 10.5\ng = 重力加速度\nbroken line\n")
	s := newService(t, data)
	_, err := s.Generate(context.Background(), GenerateRequest{AssignmentID: "A1", KPs: []string{"KP1"}, CoreExamples: []string{"CE1"},
		PerKP: 2, Source: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	rows := questions(t, data, "A1")
	if got := idsOf(rows); !reflect.DeepEqual(got, []string{"CE1_V01", "CE1_V02", "GEN-KP1-basic-01", "GEN-KP1-basic-02"}) {
		t.Fatalf("selected %v", got)
	}
	want := Row{QuestionID: "CE1_V02", KPID: "CE1", Difficulty: "basic", Type: "core_variant",
		StemRef: "assignments/generated_from_core/CE1/CE1_V02.md", Source: "core_example", Tags: "core:CE1"}
	if rows[1] != want {
		t.Fatalf("row %+v", rows[1])
	}
	if got := readText(t, data, rows[1].StemRef); got != "质量为 4 kg 的物体受到 12.5 N 的力，g 取 重力加速度，{missing} 不变。" {
		t.Fatalf("variant 2: %q", got)
	}
	var index []map[string]string
	if err := json.Unmarshal([]byte(readText(t, data, "assignments/generated_from_core/CE1/index.json")), &index); err != nil ||
		len(index) != 2 || index[0]["id"] != "CE1_V01" || index[0]["stem_ref"] != "assignments/generated_from_core/CE1/CE1_V01.md" {
		t.Fatalf("index %v %v", index, err)
	}
	_, err = s.Generate(context.Background(), GenerateRequest{AssignmentID: "A2", KPs: []string{"KP1"}, CoreExamples: []string{"NOPE"}, PerKP: 1, Source: "auto"})
	if fault.CodeOf(err) != fault.Invalid || !strings.Contains(err.Error(), "core example not found: NOPE") {
		t.Fatalf("missing core example: %v", err)
	}
	if plusI("3.0", 1) != "4.0" || plusI("x1", 1) != "x1" || plusI("-2", 3) != "1" {
		t.Fatal("plusI")
	}
}

// Ids that would leave DATA_DIR/assignments (or name the core-variants
// folder) are refused before anything is written.
func TestTraversalIDsRefused(t *testing.T) {
	data := t.TempDir()
	writeBank(t, data, selectionBank...)
	s := newService(t, data)
	before := treeState(t, data)
	for _, id := range []string{"../evil", "..", ".", "a/b", `a\b`, "%2e%2e", "", "generated_from_core", "/etc"} {
		for _, source := range []string{"auto", "teacher"} {
			_, err := s.Generate(context.Background(), GenerateRequest{AssignmentID: id, KPs: []string{"KP1"}, PerKP: 2,
				Source: source, RequirementsJSON: mustJSON(validRequirements())})
			if fault.CodeOf(err) != fault.Invalid {
				t.Errorf("%q (%s): %v", id, source, err)
			}
		}
		if _, err := s.Render(context.Background(), id); fault.CodeOf(err) != fault.Invalid && fault.CodeOf(err) != fault.NotFound {
			t.Errorf("render %q: %v", id, err)
		}
		if _, err := s.Status(id); fault.CodeOf(err) != fault.Invalid && fault.CodeOf(err) != fault.NotFound {
			t.Errorf("status %q: %v", id, err)
		}
	}
	if _, err := s.AutoGenerate(context.Background(), "../../x", "", testDay, nil, 2, false); err != nil {
		t.Fatal(err) // slugged: AUTO_x_2026-12-01
	}
	if _, err := os.Stat(filepath.Join(data, "assignments", "AUTO_x_"+testDay, "meta.json")); err != nil {
		t.Fatalf("slugged auto id: %v", err)
	}
	os.RemoveAll(filepath.Join(data, "assignments"))
	if after := treeState(t, data); after != before {
		t.Fatalf("refused ids wrote files:\n%s\n---\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(data), "evil")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("wrote outside DATA_DIR")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Two tenants (two DATA_DIRs) never mix: each reads its own bank, core
// examples and recency, and writes only its own tree.
func TestTwoTenantsNeverMix(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeBank(t, a, bankRow{"A-Q1", "KP1", "basic", "甲的题"}, bankRow{"A-Q2", "KP1", "medium", ""})
	writeFile(t, a, "core_examples/stems/CE1.md", "甲的例题 {m}")
	sa, sb := newService(t, a), newService(t, b)
	bBefore := treeState(t, b)
	if _, err := sa.Generate(context.Background(), GenerateRequest{AssignmentID: "HW1", KPs: []string{"KP1"}, CoreExamples: []string{"CE1"}, PerKP: 2, Source: "auto"}); err != nil {
		t.Fatal(err)
	}
	if after := treeState(t, b); after != bBefore {
		t.Fatalf("a's generation wrote into b:\n%s", after)
	}
	_, err := sb.Generate(context.Background(), GenerateRequest{AssignmentID: "HW1", KPs: []string{"KP1"}, CoreExamples: []string{"CE1"}, PerKP: 2, Source: "auto"})
	if fault.CodeOf(err) != fault.Invalid {
		t.Fatalf("b sees a's core example: %v", err)
	}
	if _, err := sb.Generate(context.Background(), GenerateRequest{AssignmentID: "HW1", KPs: []string{"KP1"}, PerKP: 2, Source: "auto"}); err != nil {
		t.Fatal(err)
	}
	if got := idsOf(questions(t, a, "HW1")); !reflect.DeepEqual(got, []string{"CE1_V01", "CE1_V02", "A-Q1", "A-Q2"}) {
		t.Fatalf("a: %v", got)
	}
	if got := idsOf(questions(t, b, "HW1")); !reflect.DeepEqual(got, []string{"GEN-KP1-basic-01", "GEN-KP1-basic-02"}) {
		t.Fatalf("b: %v", got)
	}
	// a's recent use does not count in b, and b's files never reach a.
	if _, err := sb.Generate(context.Background(), GenerateRequest{AssignmentID: "HW2", KPs: []string{"KP1"}, PerKP: 1, Source: "auto"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(a, "assignments", "HW2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("b's generation reached a")
	}
	if _, err := sa.Generate(context.Background(), GenerateRequest{AssignmentID: "HW3", KPs: []string{"KP1"}, PerKP: 1, Source: "auto"}); err != nil {
		t.Fatal(err)
	}
	if got := idsOf(questions(t, a, "HW3")); !reflect.DeepEqual(got, []string{"GEN-KP1-basic-01"}) {
		t.Fatalf("a's recency: %v", got) // A-Q1 and A-Q2 are used by HW1 today
	}
}

// Bank refs are kept only inside DATA_DIR: a symlink or an absolute path
// leading out is dropped (and the render shows the missing-stem line); the
// predecessor's "data/…" form is made DATA_DIR-relative.
func TestBankRefsStayInside(t *testing.T) {
	data := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret.md")
	writeFile(t, filepath.Dir(outside), "secret.md", "机密")
	writeFile(t, data, "question_bank/stems/ok.md", "正常题干")
	if err := os.Symlink(outside, filepath.Join(data, "question_bank", "stems", "link.md")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, data, "question_bank/questions.csv", string(encodeRows([]Row{
		{QuestionID: "Q1", KPID: "KP1", Difficulty: "basic", StemRef: "data/question_bank/stems/ok.md"},
		{QuestionID: "Q2", KPID: "KP1", Difficulty: "basic", StemRef: "question_bank/stems/link.md"},
		{QuestionID: "Q3", KPID: "KP1", Difficulty: "basic", StemRef: outside, AnswerRef: "../../etc/passwd"},
	})))
	s := newService(t, data)
	res, err := s.Generate(context.Background(), GenerateRequest{AssignmentID: "A1", KPs: []string{"KP1"}, PerKP: 3, Source: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	rows := questions(t, data, "A1")
	if rows[0].StemRef != "question_bank/stems/ok.md" || rows[1].StemRef != "" || rows[2].StemRef != "" || rows[2].AnswerRef != "" ||
		strings.Count(res.Output, "[WARN]") != 3 {
		t.Fatalf("rows %+v\n%s", rows, res.Output)
	}
	if text, ok := s.readRef("question_bank/stems/link.md", 100); ok || text != "" {
		t.Fatal("read through a symlink leaving DATA_DIR")
	}
}
