package engine

import "bytes"

// A minimal scanner over JSON already known to be valid, to find where
// metadata.managedFields sits in an object's JSON so it can be cut out of
// the bytes: cheaper than decoding and re-encoding the object.

// managedFieldsSpan returns the byte range to cut from the valid JSON
// object data to remove metadata.managedFields: the member and one comma
// next to it. ok is false when there is no such member spelt plainly.
func managedFieldsSpan(data []byte) (start, end int, ok bool) {
	s := scanner{data: data}
	found := false
	s.members(func(key []byte, _, valueAt int) bool {
		if string(key) != "metadata" || valueAt >= len(data) || data[valueAt] != '{' {
			return false
		}
		s.pos = valueAt
		start, end, found = s.memberSpan("managedFields")
		return true
	})
	return start, end, found
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
	s.pos++ // '{'
	for {
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] == '}' {
			s.pos++
			return
		}
		memberAt := s.pos
		key := s.str()
		s.space()
		s.pos++ // ':'
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
		for prev > 0 && isSpace(s.data[prev]) {
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

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// eventSpans finds the type and the object of a watch event's JSON
// without decoding it: the frame was checked by the framer's JSON decoder
// already. ok is false when they are not plainly there.
func eventSpans(data []byte) (typ string, object []byte, ok bool) {
	s := scanner{data: data}
	s.space()
	if s.pos >= len(data) || data[s.pos] != '{' {
		return "", nil, false
	}
	var haveType bool
	s.members(func(key []byte, _, valueAt int) bool {
		switch string(key) {
		case "type":
			s.pos = valueAt
			v := s.str()
			if valueAt >= len(data) || data[valueAt] != '"' || bytes.IndexByte(v, '\\') >= 0 {
				return true
			}
			typ, haveType = string(v), true
		case "object":
			s.pos = valueAt
			s.value()
			object = data[valueAt:s.pos]
		default:
			return false
		}
		s.pos = valueAt // members skips the value
		return haveType && object != nil
	})
	return typ, object, haveType && len(object) > 0 && object[0] == '{'
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
			s.pos += 2
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
