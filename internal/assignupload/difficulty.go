package assignupload

import "strings"

// difficultyNames map what a model or a teacher writes to the four
// difficulties, in the predecessor's order, which decides the substring
// match.
var difficultyNames = []struct{ name, norm string }{
	{"basic", "basic"}, {"medium", "medium"}, {"advanced", "advanced"}, {"challenge", "challenge"},
	{"easy", "basic"}, {"intermediate", "medium"}, {"hard", "advanced"}, {"expert", "challenge"},
	{"very hard", "challenge"}, {"very_hard", "challenge"},
	{"入门", "basic"}, {"简单", "basic"}, {"基础", "basic"},
	{"中等", "medium"}, {"一般", "medium"}, {"提高", "medium"},
	{"较难", "advanced"}, {"困难", "advanced"}, {"拔高", "advanced"},
	{"压轴", "challenge"}, {"挑战", "challenge"},
}

// normalizeDifficulty is the predecessor's normalize_difficulty: the
// trimmed, lowercased text matched exactly; else the first name, in
// order, contained in the trimmed text as written (not lowercased: "Very
// Hard!" finds nothing); else basic.
func normalizeDifficulty(v string) string {
	raw := strings.TrimSpace(v)
	if raw == "" {
		return "basic"
	}
	lowered := strings.ToLower(raw)
	for _, d := range difficultyNames {
		if lowered == d.name {
			return d.norm
		}
	}
	for _, d := range difficultyNames {
		if strings.Contains(raw, d.name) {
			return d.norm
		}
	}
	return "basic"
}
