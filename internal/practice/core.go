package practice

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/layout"
)

// maxVariables bounds the name = value lines of a variants file.
const maxVariables = 200

// coreVariants writes count variants of a core example (the predecessor's
// generate_variants.py): DATA_DIR/core_examples/stems/<id>.md with
// {name} placeholders, DATA_DIR/core_examples/variants/<id>.md with lines
// "name = value"; variant i (1…count) puts each value in, a numeric one
// plus i. The variants go to DATA_DIR/assignments/generated_from_core/<id>/
// <id>_VNN.md with index.json [{id, stem_ref}]. A missing example is 400.
func (s *Service) coreVariants(id string, count int) ([]Row, error) {
	stem, ok := s.readRef("core_examples/stems/"+id+".md", maxStemRunes)
	if !ok {
		return nil, fault.Newf(fault.Invalid, "core example not found: %s", id)
	}
	vars, _ := s.readRef("core_examples/variants/"+id+".md", 1<<16)
	type variable struct{ name, value string }
	var list []variable
	for _, line := range strings.Split(vars, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(name) == "" {
			continue
		}
		if len(list) == maxVariables {
			break
		}
		list = append(list, variable{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	dir := layout.Tenant{DataDir: s.dataDir}.CoreVariantsDir(id)
	rel := "assignments/" + coreDir + "/" + id
	type entry struct {
		ID      string `json:"id"`
		StemRef string `json:"stem_ref"`
	}
	var index []entry
	var rows []Row
	for i := 1; i <= count; i++ {
		text := stem
		for _, v := range list {
			text = strings.ReplaceAll(text, "{"+v.name+"}", plusI(v.value, i))
		}
		vid := fmt.Sprintf("%s_V%02d", id, i)
		ref := rel + "/" + vid + ".md"
		if err := atomicfile.WriteFile(filepath.Join(dir, vid+".md"), []byte(text), 0o644); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "write core variant failed")
		}
		index = append(index, entry{vid, ref})
		rows = append(rows, Row{QuestionID: vid, KPID: id, Difficulty: Basic, Type: "core_variant",
			StemRef: ref, Source: "core_example", Tags: "core:" + id})
	}
	if len(index) > 0 {
		if err := atomicfile.WriteJSON(filepath.Join(dir, "index.json"), index); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "write core variant failed")
		}
	}
	return rows, nil
}

// plusI is a variable's value for variant i: an integer plus i, a decimal
// plus i (keeping ".0" as Python's float does), anything else unchanged.
func plusI(value string, i int) string {
	if n, err := strconv.Atoi(value); err == nil {
		return strconv.Itoa(n + i)
	}
	if f, err := strconv.ParseFloat(value, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		out := strconv.FormatFloat(f+float64(i), 'f', -1, 64)
		if !strings.ContainsAny(out, ".eE") {
			out += ".0"
		}
		return out
	}
	return value
}
