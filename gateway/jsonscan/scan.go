// Package jsonscan is a minimal scanner over JSON already known to be
// valid (or to be checked by its decoding; see ValidAround): it finds where metadata.managedFields sits in an object's JSON so
// it can be cut out of the bytes (cheaper than decoding the object and
// encoding it again), and the type and object of a watch event.
package jsonscan

import (
	"bytes"
	"encoding/json"
)

// ManagedFieldsSpan returns the byte range to cut from the valid JSON
// object data to remove metadata.managedFields: the member and one comma
// next to it (an empty range when metadata plainly has none). ok is false
// when the scanner cannot tell: a key spelt with escapes, or a key given
// twice (decoders take the last; the API server never sends either).
func ManagedFieldsSpan(data []byte) (start, end int, ok bool) {
	s := scanner{data: data}
	metaAt, metas := -1, 0
	s.members(func(key []byte, _, valueAt int) bool {
		if string(key) == "metadata" {
			metas++
			metaAt = valueAt
		}
		return false
	})
	if metas != 1 || metaAt >= len(data) || data[metaAt] != '{' {
		return 0, 0, false
	}
	s.pos = metaAt
	found := 0
	s.members(func(key []byte, _, _ int) bool {
		if string(key) == "managedFields" {
			found++
		}
		return false
	})
	switch {
	case found > 1:
		return 0, 0, false
	case found == 0:
		// None, unless spelt with escapes.
		return 0, 0, !bytes.Contains(data[metaAt:s.pos], []byte(`\`))
	}
	s.pos = metaAt
	return s.memberSpan("managedFields")
}

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// members walks the members of the object at pos, calling fn with each
// key, where the member starts and where its value starts; fn returning
// true stops the walk (fn may move pos). After a full walk pos is past
// the object's '}'.
func (s *scanner) members(fn func(key []byte, memberAt, valueAt int) bool) {
	s.space()
	s.skip() // '{'
	for {
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] == '}' {
			s.skip()
			return
		}
		memberAt := s.pos
		key := s.str()
		s.space()
		s.skip() // ':'
		s.space()
		if fn(key, memberAt, s.pos) {
			return
		}
		s.value()
		s.space()
		if s.pos < len(s.data) && s.data[s.pos] == ',' {
			s.pos++
		}
	}
}

// memberSpan finds member name in the object at pos and returns the range
// to cut: the member with the comma before it or, for the first member,
// the member with the comma (and space) after it.
func (s *scanner) memberSpan(name string) (start, end int, ok bool) {
	s.members(func(key []byte, memberAt, valueAt int) bool {
		if string(key) != name {
			return false
		}
		s.pos = valueAt
		s.value()
		start, end, ok = memberAt, s.pos, true
		prev := memberAt - 1
		for prev > 0 && IsSpace(s.data[prev]) {
			prev--
		}
		if s.data[prev] == ',' {
			start = prev
			return true
		}
		s.space()
		if s.pos < len(s.data) && s.data[s.pos] == ',' {
			s.pos++
			s.space()
			end = s.pos
		}
		return true
	})
	return start, end, ok
}

// skip moves past one byte, never past the end: on broken input the
// scanner's ranges stay inside data.
func (s *scanner) skip() {
	if s.pos < len(s.data) {
		s.pos++
	}
}

// IsSpace says whether b is JSON whitespace.
func IsSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// EventObjectAt finds the type of a watch event's JSON and its object, as
// the object's byte range in data, without decoding it; the caller checks
// the frame (ValidAround, and the object's decoding). ok is false when
// they are not plainly there: a type with escapes or bytes outside ASCII,
// a key given twice (a decoder takes the last; a key spelt with escapes
// may be either), an object that is not one.
func EventObjectAt(data []byte) (typ string, start, end int, ok bool) {
	s := scanner{data: data}
	s.space()
	if s.pos >= len(data) || data[s.pos] != '{' {
		return "", 0, 0, false
	}
	types, objects, plain := 0, 0, true
	s.members(func(key []byte, _, valueAt int) bool {
		if bytes.IndexByte(key, '\\') >= 0 {
			plain = false // a key spelt with escapes may be "type" or "object"
		}
		switch string(key) {
		case "type":
			types++
			s.pos = valueAt
			v := s.str()
			if valueAt >= len(data) || data[valueAt] != '"' || !plainASCII(v) {
				plain = false
			}
			typ = string(v)
		case "object":
			objects++
			s.pos = valueAt
			s.value()
			start, end = valueAt, s.pos
		}
		// pos is past the value read, if any: members' skip of the
		// value then finds the ',' or '}' after it and stays.
		return false
	})
	return typ, start, end, plain && types == 1 && objects == 1 && end > start && data[start] == '{'
}

// ValidAround says whether data is valid JSON with {} in place of
// data[start:end]: for a frame whose object is checked by its own
// decoding, a check of the rest.
func ValidAround(data []byte, start, end int) bool {
	around := make([]byte, 0, len(data)-(end-start)+2)
	around = append(append(append(around, data[:start]...), "{}"...), data[end:]...)
	return json.Valid(around)
}

// plainASCII says whether b has neither escapes nor bytes outside ASCII,
// so that its bytes are the string a decoder would give.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// str skips the string at pos and returns its content (escapes kept).
func (s *scanner) str() []byte {
	if s.pos >= len(s.data) {
		return nil
	}
	s.pos++ // '"'
	from := s.pos
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case '\\':
			s.skip()
			s.skip()
		case '"':
			out := s.data[from:s.pos]
			s.pos++
			return out
		default:
			s.pos++
		}
	}
	return s.data[min(from, len(s.data)):]
}

// value skips the value at pos.
func (s *scanner) value() {
	if s.pos >= len(s.data) {
		return
	}
	switch s.data[s.pos] {
	case '"':
		s.str()
	case '{', '[':
		depth := 0
		for s.pos < len(s.data) {
			switch s.data[s.pos] {
			case '"':
				s.str()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.pos++
			if depth == 0 {
				return
			}
		}
	default: // number, true, false, null
		for s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			s.pos++
		}
	}
}

// WithoutManagedFields returns a copy of the JSON object data without
// metadata.managedFields. data must be valid JSON.
func WithoutManagedFields(data []byte) ([]byte, error) {
	start, end, ok := ManagedFieldsSpan(data)
	if !ok {
		// The member is spelt in a way the scanner does not match (escaped
		// characters in its name): take the long way.
		return withoutManagedFieldsSlow(data)
	}
	out := make([]byte, 0, len(data)-(end-start))
	out = append(out, data[:start]...)
	return append(out, data[end:]...), nil
}

func withoutManagedFieldsSlow(data []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	var md map[string]json.RawMessage
	if err := json.Unmarshal(m["metadata"], &md); err != nil {
		return nil, err
	}
	delete(md, "managedFields")
	b, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	m["metadata"] = b
	return json.Marshal(m)
}
