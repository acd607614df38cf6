// Package jsondec decodes JSON into the values encoding/json gives an
// any (map[string]any, []any, string, bool, nil), with numbers either as
// the API machinery's Unstructured takes them (int64 where the literal has
// no '.' and fits, float64 otherwise: sigs.k8s.io/json's PreserveInts) or
// as json.Number (a json.Decoder with UseNumber). It decodes by recursive
// descent as it checks the syntax, where encoding/json runs its syntax
// state machine over the whole input first and then decodes it again.
//
// It only decodes what it decodes exactly as those do; anything else (a
// syntax error, nesting past maxDepth, with PreserveInts a number out of
// float64's range) makes it decline, and the caller decodes with
// encoding/json for the value or its error. A differential fuzz test holds
// it to them.
package jsondec

import (
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Numbers says how numbers are decoded.
type Numbers int

const (
	// PreserveInts: int64 where the literal has no '.' and parses as
	// one, float64 otherwise, as sigs.k8s.io/json.UnmarshalCaseSensitivePreserveInts.
	PreserveInts Numbers = iota
	// UseNumber: json.Number, as json.Decoder.UseNumber.
	UseNumber
)

// maxDepth is the nesting past which it declines (encoding/json allows
// 10 000 levels; deeper documents are not worth a fast path).
const maxDepth = 1000

// Decode decodes data, one JSON value with only whitespace around it. ok
// is false where it declines.
func Decode(data []byte, numbers Numbers) (v any, ok bool) {
	d := decoder{data: data, useNumber: numbers == UseNumber}
	v, ok = d.value()
	if !ok {
		return nil, false
	}
	d.space()
	return v, d.pos == len(d.data)
}

// Object decodes data as Decode does where it holds an object, and
// declines any other value (null too).
func Object(data []byte, numbers Numbers) (map[string]any, bool) {
	v, ok := Decode(data, numbers)
	m, isMap := v.(map[string]any)
	return m, ok && isMap
}

type decoder struct {
	data      []byte
	pos       int
	depth     int
	useNumber bool
}

func (d *decoder) space() { d.pos = SkipSpace(d.data, d.pos) }

func (d *decoder) value() (any, bool) {
	d.space()
	if d.pos >= len(d.data) {
		return nil, false
	}
	switch c := d.data[d.pos]; c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		s, ok := d.str()
		return s, ok
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			return d.number()
		}
		return nil, false
	}
}

func (d *decoder) literal(word string) bool {
	end := LiteralEnd(d.data, d.pos, word)
	if end < 0 {
		return false
	}
	d.pos = end
	return true
}

func (d *decoder) object() (any, bool) {
	d.pos++ // '{'
	if d.depth++; d.depth > maxDepth {
		return nil, false
	}
	m := make(map[string]any)
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return m, true
	}
	for {
		d.space()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, false
		}
		key, ok := d.key()
		if !ok {
			return nil, false
		}
		d.space()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, false
		}
		d.pos++
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		m[key] = v // a key given twice keeps its last value, as encoding/json
		d.space()
		if d.pos >= len(d.data) {
			return nil, false
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			d.depth--
			return m, true
		default:
			return nil, false
		}
	}
}

func (d *decoder) array() (any, bool) {
	d.pos++ // '['
	if d.depth++; d.depth > maxDepth {
		return nil, false
	}
	a := make([]any, 0) // never nil, as encoding/json: [] is an empty slice
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return a, true
	}
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.space()
		if d.pos >= len(d.data) {
			return nil, false
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			d.depth--
			return a, true
		default:
			return nil, false
		}
	}
}

// key is str for an object's key, sharing one string for the keys every
// Kubernetes object repeats: fewer allocations, and a cache of objects
// holds each of these once.
func (d *decoder) key() (string, bool) {
	start := d.pos + 1
	end, plain := d.scanString()
	if end < 0 {
		return "", false
	}
	if plain {
		raw := d.data[start : end-1]
		if k, ok := commonKeys[string(raw)]; ok { // no allocation for the lookup
			return k, true
		}
		return string(raw), true
	}
	return unquote(d.data[start : end-1]), true
}

// str reads the string at d.pos (its opening quote).
func (d *decoder) str() (string, bool) {
	start := d.pos + 1
	end, plain := d.scanString()
	if end < 0 {
		return "", false
	}
	if plain {
		return string(d.data[start : end-1]), true
	}
	return unquote(d.data[start : end-1]), true
}

// scanString moves past the string at d.pos (its opening quote), returning
// the position after it (-1 if it is not a valid JSON string) and whether
// its bytes are its value (StringEnd).
func (d *decoder) scanString() (end int, plain bool) {
	end, plain = StringEnd(d.data, d.pos)
	if end >= 0 {
		d.pos = end
	}
	return end, plain
}

func hexValue(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		h := hexValue(c)
		if h < 0 {
			return -1
		}
		r = r<<4 | h
	}
	return r
}

// unquote decodes the inside of a string scanString accepted, as
// encoding/json does: a surrogate escape not part of a pair, and each byte
// of invalid UTF-8, become U+FFFD.
func unquote(s []byte) string {
	b := make([]byte, 0, len(s)+2*utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch e := s[r+1]; e {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != utf8.RuneError {
						r += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = utf8.RuneError
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return string(b)
}

func (d *decoder) number() (any, bool) {
	start := d.pos
	i, hasDot, integer := NumberEnd(d.data, start)
	if i < 0 {
		return nil, false
	}
	d.pos = i
	lit := d.data[start:i]
	if d.useNumber {
		return json.Number(lit), true
	}
	if integer && len(lit) <= 18 { // fits an int64 whatever its digits
		var n int64
		digits := lit
		if lit[0] == '-' {
			digits = lit[1:]
		}
		for _, c := range digits {
			n = n*10 + int64(c-'0')
		}
		if lit[0] == '-' {
			n = -n
		}
		return n, true
	}
	if !hasDot {
		if n, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
			return n, true
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return nil, false // out of float64's range: encoding/json's error
	}
	return f, true
}

// commonKeys are keys every Kubernetes object or watch event has.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"apiVersion", "kind", "metadata", "spec", "status", "type", "object",
		"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
		"deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
		"finalizers", "ownerReferences", "controller", "blockOwnerDeletion",
		"conditions", "lastTransitionTime", "message", "reason", "observedGeneration",
	} {
		m[k] = k
	}
	return m
}()
