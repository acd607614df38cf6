// Package jsonenc encodes what JSON decodes into (map[string]any, []any,
// string, float64, int64, bool and nil, as encoding/json and Unstructured
// leave them, and []string and map[string]string) exactly as encoding/json.Marshal does, byte for byte, but
// without reflection: Marshal of a map sorts its keys through reflect
// values and boxes each key and value again. Digests of such values are
// kept in objects' state annotations, so the bytes must not change; a
// fuzz test holds them to encoding/json. Any other type is handed to
// encoding/json.
package jsonenc

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Marshal is json.Marshal for decoded JSON values: the same bytes, or nil
// and an error where json.Marshal errs (NaN and infinities as a
// *json.UnsupportedValueError, as there).
func Marshal(v any) ([]byte, error) {
	b, err := appendValue(make([]byte, 0, 256), v, 0)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Append appends to dst what Marshal returns for v. On error the bytes
// appended so far are left in the result, for the caller to drop.
func Append(dst []byte, v any) ([]byte, error) { return appendValue(dst, v, 0) }

// AppendString appends s quoted as encoding/json.Marshal quotes a string.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

// maxDepth is the nesting past which a value is handed to encoding/json,
// which writes a deep value as this package would and refuses a map or
// slice that contains itself, where plain recursion would only end in a
// fatal stack overflow. Decoded JSON is never cyclic, but may nest up to
// its decoder's limit (10 000): such values take this route, with the
// same bytes.
const maxDepth = 1000

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth >= maxDepth {
		return viaEncodingJSON(dst, v)
	}
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, v), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case float64:
		return appendFloat(dst, v)
	case map[string]any:
		return appendObject(dst, v, depth)
	case []any:
		return appendArray(dst, v, depth)
	case []string:
		return appendStrings(dst, v), nil
	case map[string]string:
		return appendStringMap(dst, v), nil
	default:
		return viaEncodingJSON(dst, v)
	}
}

// viaEncodingJSON appends what encoding/json writes for v: the types this
// package does not write itself, and values past maxDepth.
func viaEncodingJSON(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

// appendObject is AppendMap written out: through AppendMap's function
// value a Deployment takes 12 % longer (1.00 -> 1.12 µs), and this is
// the path every digest takes.
func appendObject(dst []byte, m map[string]any, depth int) ([]byte, error) {
	if m == nil {
		return append(dst, "null"...), nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		if dst, err = appendValue(dst, m[k], depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// AppendMap appends m as encoding/json.Marshal writes a map with string
// keys: null when nil, else its members in the order of their keys'
// bytes, each value written by value.
func AppendMap[V any](dst []byte, m map[string]V, value func([]byte, V) ([]byte, error)) ([]byte, error) {
	if m == nil {
		return append(dst, "null"...), nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		if dst, err = value(dst, m[k]); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendArray(dst []byte, a []any, depth int) ([]byte, error) {
	if a == nil {
		return append(dst, "null"...), nil
	}
	dst = append(dst, '[')
	var err error
	for i, v := range a {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = appendValue(dst, v, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

// appendStrings and appendStringMap write the typed forms that metadata
// (finalizers, labels, annotations) takes when built rather than decoded.
func appendStrings(dst []byte, a []string) []byte {
	if a == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range a {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

func appendStringMap(dst []byte, m map[string]string) []byte {
	dst, _ = AppendMap(dst, m, func(dst []byte, v string) ([]byte, error) { return appendString(dst, v), nil })
	return dst
}

// appendFloat writes f as encoding/json does: the shortest decimal that
// reads back as f, with an exponent only below 1e-6 or from 1e21 on, and
// that exponent's leading zero dropped ("1e-07" is "1e-7").
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, &json.UnsupportedValueError{Value: reflect.ValueOf(f), Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if n := len(dst); format == 'e' && n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1]
		dst = dst[:n-1]
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does with its HTML escaping: <,
// > and & as \u003c, \u003e and \u0026, control characters as \b, \f, \n,
// \r, \t or \u00XX, invalid UTF-8 as \ufffd, and U+2028 and U+2029
// escaped, as some JavaScript parsers take them for line ends.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
