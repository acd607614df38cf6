package apply

// metaDecoder reads JSON for decodeMetaFast, checking it as strictly as
// encoding/json does: where a method returns true, the bytes it passed
// over are valid JSON. Unlike gateway/jsonscan, which trusts its input,
// it may be given anything.
type metaDecoder struct {
	data []byte
	pos  int
}

// maxDepth bounds the nesting of a skipped value. Deeper ones are left to
// the reflective decoder, which refuses them only past 10 000 levels.
const maxDepth = 1000

// object reads the object at pos (after space), calling member with each
// key, as between its quotes, to read the value after it. plain says the
// key has neither escapes nor bytes outside ASCII, so that those bytes
// are the key.
func (d *metaDecoder) object(member func(key []byte, plain bool) bool) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	for {
		d.space()
		key, plain, ok := d.rawString()
		if !ok || !d.next(':') {
			return false
		}
		d.space()
		if !member(key, plain) {
			return false
		}
		if !d.next(',') {
			return d.next('}')
		}
	}
}

// array reads the array at pos (after space), calling elem to read each
// element.
func (d *metaDecoder) array(elem func() bool) bool {
	if !d.next('[') {
		return false
	}
	if d.next(']') {
		return true
	}
	for {
		d.space()
		if !elem() {
			return false
		}
		if !d.next(',') {
			return d.next(']')
		}
	}
}

// unknown skips the value of a member the decoding does not read. Its key
// may still be one it reads, spelt with escapes: that is not plain.
func (d *metaDecoder) unknown(plain bool) bool {
	return plain && d.skip(0)
}

// skip passes over the value at pos, checking it.
func (d *metaDecoder) skip(depth int) bool {
	if depth > maxDepth || d.pos >= len(d.data) {
		return false
	}
	switch d.data[d.pos] {
	case '{':
		return d.object(func([]byte, bool) bool { return d.skip(depth + 1) })
	case '[':
		return d.array(func() bool { return d.skip(depth + 1) })
	case '"':
		_, _, ok := d.rawString()
		return ok
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	return d.number()
}

// rawString reads the string at pos and returns the bytes between its
// quotes; plain says they have neither escapes nor bytes outside ASCII,
// so that they are the string.
func (d *metaDecoder) rawString() (raw []byte, plain, ok bool) {
	data := d.data
	if d.pos >= len(data) || data[d.pos] != '"' {
		return nil, false, false
	}
	start := d.pos + 1
	plain = true
	for i := start; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			d.pos = i + 1
			return data[start:i], plain, true
		case c == '\\':
			n := escapeLen(data[i+1:])
			if n == 0 {
				return nil, false, false
			}
			i += n
			plain = false
		case c < 0x20:
			return nil, false, false
		case c >= 0x80:
			plain = false
		}
	}
	return nil, false, false
}

// escapeLen is the length of the valid escape at the start of b (after
// its backslash), 0 if there is none.
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
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return 0
			}
		}
		return 5
	}
	return 0
}

// number reads the number at pos: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *metaDecoder) number() bool {
	data, p := d.data, d.pos
	if p < len(data) && data[p] == '-' {
		p++
	}
	switch {
	case p < len(data) && data[p] == '0':
		p++
	case p < len(data) && '1' <= data[p] && data[p] <= '9':
		p = digits(data, p)
	default:
		return false
	}
	if p < len(data) && data[p] == '.' {
		from := p + 1
		if p = digits(data, from); p == from {
			return false
		}
	}
	if p < len(data) && (data[p] == 'e' || data[p] == 'E') {
		p++
		if p < len(data) && (data[p] == '+' || data[p] == '-') {
			p++
		}
		from := p
		if p = digits(data, p); p == from {
			return false
		}
	}
	d.pos = p
	return true
}

// digits is where the digits from p end.
func digits(data []byte, p int) int {
	for p < len(data) && '0' <= data[p] && data[p] <= '9' {
		p++
	}
	return p
}

func (d *metaDecoder) literal(word string) bool {
	end := d.pos + len(word)
	if end > len(d.data) || string(d.data[d.pos:end]) != word {
		return false
	}
	d.pos = end
	return true
}

// next skips space, then c if it is there, saying whether it was.
func (d *metaDecoder) next(c byte) bool {
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

func (d *metaDecoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}
