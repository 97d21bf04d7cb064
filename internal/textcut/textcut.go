// Package textcut cuts user and model text to a number of characters
// (runes, as the predecessor's Python s[:n] counted), for bounded fields,
// previews and log attributes. It cuts in place: no copy, and bytes that
// are not valid UTF-8 are kept as they are.
package textcut

// Head is s cut to its first n characters (all of s when shorter; "" when
// n < 1).
func Head(s string, n int) string {
	if n < 1 {
		return ""
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// Short is Head with "…" appended when s was longer than n characters.
func Short(s string, n int) string {
	h := Head(s, n)
	if h == s || n < 1 {
		return h
	}
	return h + "…"
}
