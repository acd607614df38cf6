package jsondec

import "unicode/utf8"

// The lexical checks of JSON, as strict as encoding/json's: this package's
// decoder reads with them, and so does every reader that checks its input
// itself (gateway/apply's reader of a write's metadata).

// SkipSpace returns the position of the first byte from pos on that is not
// JSON whitespace.
func SkipSpace(data []byte, pos int) int {
	for pos < len(data) {
		switch data[pos] {
		case ' ', '\t', '\n', '\r':
			pos++
		default:
			return pos
		}
	}
	return pos
}

// StringEnd checks the string whose opening quote is at data[pos] and
// returns the position just past its closing quote, or -1 when there is
// no valid JSON string there. plain says its bytes are its value:
// printable ASCII without escapes.
func StringEnd(data []byte, pos int) (end int, plain bool) {
	if pos >= len(data) || data[pos] != '"' {
		return -1, false
	}
	plain = true
	for i := pos + 1; i < len(data); {
		switch c := data[i]; {
		case c == '"':
			return i + 1, plain
		case c < 0x20:
			return -1, false
		case c == '\\':
			n := escapeLen(data[i+1:])
			if n == 0 {
				return -1, false
			}
			i += 1 + n
			plain = false
		case c >= utf8.RuneSelf:
			plain = false
			i++
		default:
			i++
		}
	}
	return -1, false
}

// escapeLen is the length of the valid escape at the start of b (after its
// backslash), 0 if there is none.
func escapeLen(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	switch b[0] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 1
	case 'u':
		if len(b) < 5 {
			return 0
		}
		for _, c := range b[1:5] {
			if hexValue(c) < 0 {
				return 0
			}
		}
		return 5
	}
	return 0
}

// NumberEnd checks the number at data[pos],
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, and returns the position
// just past it, or -1 when there is none. dot says it has a fraction,
// integer that it has neither a fraction nor an exponent.
func NumberEnd(data []byte, pos int) (end int, dot, integer bool) {
	p := pos
	if p < len(data) && data[p] == '-' {
		p++
	}
	switch {
	case p < len(data) && data[p] == '0':
		p++
	case p < len(data) && '1' <= data[p] && data[p] <= '9':
		p = digitsEnd(data, p)
	default:
		return -1, false, false
	}
	integer = true
	if p < len(data) && data[p] == '.' {
		dot, integer = true, false
		from := p + 1
		if p = digitsEnd(data, from); p == from {
			return -1, false, false
		}
	}
	if p < len(data) && (data[p] == 'e' || data[p] == 'E') {
		integer = false
		p++
		if p < len(data) && (data[p] == '+' || data[p] == '-') {
			p++
		}
		from := p
		if p = digitsEnd(data, p); p == from {
			return -1, false, false
		}
	}
	return p, dot, integer
}

// digitsEnd is where the digits from p end.
func digitsEnd(data []byte, p int) int {
	for p < len(data) && '0' <= data[p] && data[p] <= '9' {
		p++
	}
	return p
}

// LiteralEnd returns the position just past word when data holds it at
// pos, and -1 otherwise.
func LiteralEnd(data []byte, pos int, word string) int {
	end := pos + len(word)
	if end > len(data) || string(data[pos:end]) != word {
		return -1
	}
	return end
}
