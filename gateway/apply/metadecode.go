package apply

import (
	"bytes"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// decodeMetaFast reads the metadata of an answer of the shape the API
// server sends, at a fraction of the reflective decoder's cost: one pass
// over the bytes, no reflection, managedFields checked but not kept. ok
// is false for anything it does not fully understand: a Status, a key
// with escapes or given twice, a null or a value of an unexpected type, a
// number not plainly an int64, a string whose decoding it is not sure of,
// invalid JSON. decodeMetaReflect reads those, so where ok is true the
// result must be exactly that decoder's; hence every byte is checked as
// strictly as it checks them, skipped values included.
func decodeMetaFast(raw []byte) (m *metav1.ObjectMeta, ok bool) {
	d := metaDecoder{data: raw}
	m = new(metav1.ObjectMeta)
	var seen fieldSet
	ok = d.object(func(key []byte, plain bool) bool {
		switch string(key) {
		case "kind":
			kind, plain, ok := d.rawString()
			// A Status is an error, or a success without the object:
			// the reflective decoder reads it.
			return seen.first(0) && ok && plain && string(kind) != "Status"
		case "metadata":
			return seen.first(1) && d.meta(m)
		}
		return d.unknown(plain)
	})
	if d.space(); !ok || d.pos != len(d.data) {
		return nil, false
	}
	return m, true
}

// fieldSet is the set of a struct's fields read so far, each by its place
// in the switch reading them. A key given twice makes the reflective
// decoder overwrite some fields and merge others (maps, the elements of
// slices): the fast path leaves that to it.
type fieldSet uint16

func (s *fieldSet) first(field uint) bool {
	was := *s&(1<<field) == 0
	*s |= 1 << field
	return was
}

// meta reads the metadata object at pos into m.
func (d *metaDecoder) meta(m *metav1.ObjectMeta) bool {
	var seen fieldSet
	return d.object(func(key []byte, plain bool) bool {
		switch string(key) {
		case "name":
			return seen.first(0) && d.setString(&m.Name)
		case "generateName":
			return seen.first(1) && d.setString(&m.GenerateName)
		case "namespace":
			return seen.first(2) && d.setString(&m.Namespace)
		case "selfLink":
			return false // deprecated and no longer sent: left to the reflective decoder
		case "uid":
			return seen.first(4) && d.setString((*string)(&m.UID))
		case "resourceVersion":
			return seen.first(5) && d.setString(&m.ResourceVersion)
		case "generation":
			return seen.first(6) && d.setInt(&m.Generation)
		case "creationTimestamp":
			return seen.first(7) && d.setTime(&m.CreationTimestamp)
		case "deletionTimestamp":
			m.DeletionTimestamp = new(metav1.Time)
			return seen.first(8) && d.setTime(m.DeletionTimestamp)
		case "deletionGracePeriodSeconds":
			m.DeletionGracePeriodSeconds = new(int64)
			return seen.first(9) && d.setInt(m.DeletionGracePeriodSeconds)
		case "labels":
			return seen.first(10) && d.setStringMap(&m.Labels)
		case "annotations":
			return seen.first(11) && d.setStringMap(&m.Annotations)
		case "ownerReferences":
			return seen.first(12) && d.setOwnerReferences(&m.OwnerReferences)
		case "finalizers":
			return seen.first(13) && d.setStrings(&m.Finalizers)
		}
		return d.unknown(plain) // managedFields among them: the engine drops them
	})
}

func (d *metaDecoder) setOwnerReferences(into *[]metav1.OwnerReference) bool {
	refs := []metav1.OwnerReference{} // [] is an empty list, not none
	ok := d.array(func() bool {
		refs = append(refs, metav1.OwnerReference{})
		return d.ownerReference(&refs[len(refs)-1])
	})
	*into = refs
	return ok
}

func (d *metaDecoder) ownerReference(r *metav1.OwnerReference) bool {
	var seen fieldSet
	var flags *[2]bool // controller and blockOwnerDeletion: one allocation
	flag := func(i int) *bool {
		if flags == nil {
			flags = new([2]bool)
		}
		return &flags[i]
	}
	return d.object(func(key []byte, plain bool) bool {
		switch string(key) {
		case "apiVersion":
			return seen.first(0) && d.setString(&r.APIVersion)
		case "kind":
			return seen.first(1) && d.setString(&r.Kind)
		case "name":
			return seen.first(2) && d.setString(&r.Name)
		case "uid":
			return seen.first(3) && d.setString((*string)(&r.UID))
		case "controller":
			r.Controller = flag(0)
			return seen.first(4) && d.setBool(r.Controller)
		case "blockOwnerDeletion":
			r.BlockOwnerDeletion = flag(1)
			return seen.first(5) && d.setBool(r.BlockOwnerDeletion)
		}
		return d.unknown(plain)
	})
}

func (d *metaDecoder) setStringMap(into *map[string]string) bool {
	m := map[string]string{}
	*into = m
	var scratch [256]byte
	return d.object(func(key []byte, plain bool) bool {
		raw, rawPlain, ok := d.rawString()
		if !ok {
			return false
		}
		// A key and its value share one allocation: labels and
		// annotations are most of the strings of an answer.
		kv, keyOK := appendUnquoted(scratch[:0], key, plain)
		n := len(kv)
		if kv, ok = appendUnquoted(kv, raw, rawPlain); !keyOK || !ok {
			return false
		}
		s := string(kv)
		m[s[:n]] = s[n:] // a key given twice: the last value, as decoders do
		return true
	})
}

func (d *metaDecoder) setStrings(into *[]string) bool {
	list := []string{}
	ok := d.array(func() bool {
		s, ok := d.readString()
		list = append(list, s)
		return ok
	})
	*into = list
	return ok
}

func (d *metaDecoder) setString(into *string) bool {
	s, ok := d.readString()
	*into = s
	return ok
}

// setInt reads an int64 as the reflective decoder does, with
// strconv.ParseInt of the number as written: a fraction, an exponent or
// more digits than surely fit are left to it.
func (d *metaDecoder) setInt(into *int64) bool {
	start := d.pos
	if !d.number() {
		return false
	}
	digits := d.data[start:d.pos]
	neg := digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	if len(digits) > 18 {
		return false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	*into = n
	return true
}

// setTime reads a timestamp as metav1.Time's UnmarshalJSON does.
func (d *metaDecoder) setTime(into *metav1.Time) bool {
	s, ok := d.readString()
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return false // the reflective decoder's error to report
	}
	into.Time = t.Local()
	return true
}

func (d *metaDecoder) setBool(into *bool) bool {
	switch {
	case d.literal("true"):
		*into = true
	case d.literal("false"):
		*into = false
	default:
		return false
	}
	return true
}

func (d *metaDecoder) readString() (string, bool) {
	raw, plain, ok := d.rawString()
	if !ok {
		return "", false
	}
	if plain {
		return string(raw), true
	}
	var scratch [256]byte
	b, ok := appendUnquoted(scratch[:0], raw, false)
	return string(b), ok
}

// appendUnquoted appends the content of a string checked by rawString,
// decoded as JSON decoders do; ok is false where it would differ from
// them: bytes that are not UTF-8 (they put U+FFFD for each) and escaped
// surrogates (they pair them).
func appendUnquoted(b, raw []byte, plain bool) (_ []byte, ok bool) {
	if plain {
		return append(b, raw...), true
	}
	if !utf8.Valid(raw) {
		return b, false
	}
	for {
		i := bytes.IndexByte(raw, '\\')
		if i < 0 {
			return append(b, raw...), true
		}
		b = append(b, raw[:i]...)
		c := raw[i+1]
		raw = raw[i+2:]
		switch c {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			r := hex4(raw)
			if utf16.IsSurrogate(r) {
				return b, false
			}
			b = utf8.AppendRune(b, r)
			raw = raw[4:]
			continue
		} // else '"', '\\' or '/', itself
		b = append(b, c)
	}
}

// hex4 is the value of the four hex digits rawString checked.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a':
			r = r<<4 | rune(c-'a'+10)
		default:
			r = r<<4 | rune(c-'A'+10)
		}
	}
	return r
}
