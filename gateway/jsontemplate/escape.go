package jsontemplate

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// htmlEscape is the html builtin's escaping (text/template.HTMLEscapeString).
func htmlEscape(s string) string {
	if !strings.ContainsAny(s, "'\"&<>\000") {
		return s
	}
	return htmlReplacer.Replace(s)
}

var htmlReplacer = strings.NewReplacer(
	"\000", "\uFFFD", `"`, "&#34;", "'", "&#39;", "&", "&amp;", "<", "&lt;", ">", "&gt;")

// jsEscape is the js builtin's escaping (text/template.JSEscapeString):
// quotes, backslashes, <, >, & and = are escaped, control characters and
// unprintable runes written as \uXXXX.
func jsEscape(s string) string {
	if strings.IndexFunc(s, jsIsSpecial) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !jsIsSpecial(rune(c)) {
			b.WriteByte(c)
			continue
		}
		if c < utf8.RuneSelf {
			if c == '\\' || c == '\'' || c == '"' {
				b.WriteByte('\\')
				b.WriteByte(c)
			} else { // <, >, &, = and control characters
				fmt.Fprintf(&b, `\u00%02X`, c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsPrint(r) {
			b.WriteString(s[i : i+size])
		} else {
			fmt.Fprintf(&b, `\u%04X`, r)
		}
		i += size - 1
	}
	return b.String()
}

func jsIsSpecial(r rune) bool {
	switch r {
	case '\\', '\'', '"', '<', '>', '&', '=':
		return true
	}
	return r < ' ' || utf8.RuneSelf <= r
}

// urlQueryEscape is the urlquery builtin's escaping.
func urlQueryEscape(s string) string { return url.QueryEscape(s) }
