package apply

import "github.com/opgate/opgate/internal/jsondec"

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
	end, plain := jsondec.StringEnd(d.data, d.pos)
	if end < 0 {
		return nil, false, false
	}
	raw, d.pos = d.data[d.pos+1:end-1], end
	return raw, plain, true
}

// number reads the number at pos: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *metaDecoder) number() bool {
	end, _, _ := jsondec.NumberEnd(d.data, d.pos)
	if end < 0 {
		return false
	}
	d.pos = end
	return true
}

func (d *metaDecoder) literal(word string) bool {
	end := jsondec.LiteralEnd(d.data, d.pos, word)
	if end < 0 {
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

func (d *metaDecoder) space() { d.pos = jsondec.SkipSpace(d.data, d.pos) }
