package watchjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	sjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// chunks reads data at most n bytes at a time, sometimes answering
// nothing, as a network stream may.
type chunks struct {
	data  []byte
	n     int
	empty bool
}

func (c *chunks) Read(p []byte) (int, error) {
	if c.empty = !c.empty; c.empty {
		return 0, nil
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

// framesMatchDecoder reads stream with frameReader (a buffer of bufSize
// bytes to start with, reads of chunk bytes) and with json.Decoder, as
// client-go's framer does: every object json.Decoder reads comes out the
// same, both end together, and where json.Decoder refuses the stream (or
// reads a value that is no object) frameReader yields nothing valid and
// no end of stream either: StreamWatcher takes io.EOF and
// io.ErrUnexpectedEOF for a quiet end, anything else for an ERROR event.
func framesMatchDecoder(t *testing.T, stream []byte, bufSize, chunk int) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(stream))
	f := &frameReader{r: &chunks{data: stream, n: chunk}, buf: make([]byte, bufSize)}
	for i := 0; ; i++ {
		var want json.RawMessage
		werr := dec.Decode(&want)
		got, err := f.next()
		var syntax *json.SyntaxError
		var notObject *notAnObjectError
		switch {
		case werr == nil && len(want) > 0 && want[0] == '{':
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("frame %d of %q: %q, %v; json.Decoder read %q", i, stream, got, err, want)
			}
			continue
		case errors.Is(werr, io.EOF):
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after frame %d of %q: %q, %v; want io.EOF as json.Decoder", i, stream, got, err)
			}
		case err == nil:
			if json.Valid(got) {
				t.Fatalf("frame %d of %q: %q, valid JSON; json.Decoder: %q, %v", i, stream, got, want, werr)
			}
		case errors.Is(werr, io.ErrUnexpectedEOF):
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &notObject) {
				t.Fatalf("frame %d of %q cut short: %v; want io.ErrUnexpectedEOF as json.Decoder", i, stream, err)
			}
		case errors.As(werr, &syntax) || werr == nil:
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("frame %d of %q: %v, a quiet end; json.Decoder: %q, %v", i, stream, err, want, werr)
			}
		default:
			t.Fatalf("frame %d of %q: json.Decoder's %v", i, stream, werr)
		}
		return
	}
}

var frameStreams = []string{
	``, ` `, `{}`, "{}\n{}\n", `{"type":"ADDED","object":{"a":"}]{[\"\\","b":[1,{"c":null}]}}` + "\n",
	"\t\r\n {\"a\" : [ ] }  {\"b\":\"\\u0022}\"}\n", `{"a":1`, `{"a":"\`, `{}x`, `{} 1`, `[]`, `"s"`, `{"a":}}`,
	`{"a":1}}`, `}`, `<html>`, `{"a":"` + string(bytes.Repeat([]byte("é}"), 40)) + `"}`,
	// Broken or pretty-printed: the rest goes to json.Decoder.
	"{\"a\":\"x\n{\"b\":1}\n", "{\"a\":{\"b\":1}\n{\"c\":2}\n", "{\n  \"a\": [1, 2]\n}\n{\"b\":1}\n", "{\"a\":1 ]\n",
	"{\"a\":[1,2]\n", "{\"a\":\"\t\"}", "{\"x\":1}\n{\"a\":\n1}\n{\"b\":2}", `{"a"`, "{\"a\":1}\n[1]",
}

func TestFramesAreTheObjectsJSONDecoderReads(t *testing.T) {
	for _, s := range frameStreams {
		for _, size := range []struct{ buf, chunk int }{{1, 1}, {3, 2}, {8, 5}, {32 << 10, 1 << 20}} {
			framesMatchDecoder(t, []byte(s), size.buf, size.chunk)
		}
	}
}

func FuzzFramesAreTheObjectsJSONDecoderReads(f *testing.F) {
	for _, s := range frameStreams {
		f.Add([]byte(s), uint8(3), uint8(2))
	}
	f.Fuzz(func(t *testing.T, stream []byte, buf, chunk uint8) {
		framesMatchDecoder(t, stream, 1+int(buf%64), 1+int(chunk))
	})
}

func TestFramesNameTheByteOfAValueThatIsNoObject(t *testing.T) {
	f := newFrames(&chunks{data: []byte("{}\n  [1]"), n: 1})
	if _, err := f.next(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.next(); err == nil || err.Error() != `invalid character '[' looking for the beginning of a watch event at byte 5` {
		t.Errorf("a list in the stream: %v", err)
	}
}

// frameReader leaves the syntax check to the decoding; where only the
// object is decoded (managedFields cut from its bytes), the event around
// it is checked on its own.
func TestAnEventThatIsNoJSONIsRefused(t *testing.T) {
	obj := `{"apiVersion":"v1","kind":"X","metadata":{"name":"a","managedFields":[{"manager":"m"}]}}`
	for _, frame := range []string{
		`{"type":"ADDED","object":` + obj + `,}`,
		`{"type":"ADDED" "object":` + obj + `}`,
		`{"type":"ADDED","object":` + obj + `,"x":tru}`,
		`{"type":"ADDED","object":{"apiVersion":"v1","kind":"X","metadata":{"name":"a",,"managedFields":[]}}}`,
		`{"type":"ADDED","object":{"apiVersion":"v1","kind":"X","metadata":{"name":"a"}]}`,
		// Broken next to, or inside, the managedFields the decoding skips.
		`{"type":"ADDED","object":{"apiVersion":"v1","kind":"X","metadata":{"managedFields":[] "name":"a"}}}`,
		`{"type":"ADDED","object":{"apiVersion":"v1","kind":"X","metadata":{"managedFields":[],}}}`,
		`{"type":"ADDED","object":{"apiVersion":"v1","kind":"X","metadata":{"managedFields":,"name":"a"}}}`,
		`{"type":"ADDED","object":{"apiVersion":"v1","kind":"X","metadata":{"name":"a","managedFields":[1 2 {]]}}}`,
	} {
		for _, drop := range []bool{false, true} {
			if _, _, err := decodeEvent([]byte(frame), drop); err == nil {
				t.Errorf("%s (managedFields dropped: %v): no error", frame, drop)
			}
		}
	}
	if typ, o, err := decodeEvent([]byte(`{"type":"ADDED","object":`+obj+`}`), true); err != nil || typ != "ADDED" || o == nil {
		t.Errorf("a valid event: %v, %v, %v", typ, o, err)
	}
}

// readFrames reads frames from a frame reader into a buffer of size
// bytes, joining the parts of a frame that does not fit.
func readFrames(r io.Reader, size int) ([]string, error) {
	var out []string
	var cur []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		cur = append(cur, buf[:n]...)
		switch {
		case errors.Is(err, io.ErrShortBuffer):
			continue
		case err != nil:
			return out, err
		}
		out = append(out, string(cur))
		cur = nil
	}
}

func TestFramerReadsTheFramesClientGosJSONFramerReads(t *testing.T) {
	big := `{"type":"MODIFIED","object":{"a":"` + string(bytes.Repeat([]byte("x}"), 3000)) + `"}}`
	for _, stream := range []string{"", "{}", "{}\n" + big + "\n{\"b\":[]}\n", big + big} {
		for _, size := range []int{1, 7, 1024, 64 << 10} {
			want, werr := readFrames(sjson.Framer.NewFrameReader(io.NopCloser(strings.NewReader(stream))), size)
			got, err := readFrames(Framer.NewFrameReader(io.NopCloser(strings.NewReader(stream))), size)
			if !errors.Is(err, werr) || !slices.Equal(got, want) {
				t.Errorf("stream of %d bytes, buffer %d: %d frames, %v; client-go's framer %d, %v", len(stream), size, len(got), err, len(want), werr)
			}
		}
	}
}

// stillOpen is a stream that has sent data and then has nothing more for
// now: a watch whose server keeps the connection open.
type stillOpen struct{ data []byte }

var errStillOpen = errors.New("nothing more yet")

func (s *stillOpen) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, errStillOpen
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

// A broken event is refused when it is read, as json.Decoder refuses it,
// not when the connection ends: the events after it must not wait in the
// broken one's frame until then.
func TestABrokenEventIsRefusedBeforeTheStreamEnds(t *testing.T) {
	for name, stream := range map[string]string{
		"a string not closed": "{\"a\":\"x\n{\"b\":1}\n",
		"a brace short":       "{\"a\":{\"b\":1}\n{\"c\":2}\n",
		"a bracket short":     "{\"a\":[1,2}\n{\"c\":2}\n",
	} {
		f := newFrames(&stillOpen{data: []byte(stream)})
		_, err := f.next()
		var syntax *json.SyntaxError
		if !errors.As(err, &syntax) {
			t.Errorf("%s: %v, want json.Decoder's syntax error", name, err)
		}
	}
	// Pretty-printed events come out whole, as json.Decoder reads them.
	f := newFrames(&stillOpen{data: []byte("{\n  \"a\": [1, 2]\n}\n{\"b\":1}\n")})
	for _, want := range []string{"{\n  \"a\": [1, 2]\n}", `{"b":1}`} {
		if got, err := f.next(); err != nil || string(got) != want {
			t.Errorf("%q, %v; want %q", got, err, want)
		}
	}
}

// A key spelt with escapes is the key it spells: the scan that finds the
// event's type does not take the first "type" for the only one.
func TestAnEscapedKeyCountsAsTheKeyItSpells(t *testing.T) {
	frame := []byte(`{"type":"ADDED","object":{"apiVersion":"v1","kind":"X","metadata":{"name":"a","managedFields":[]}},"t\u0079pe":"DELETED"}`)
	for _, drop := range []bool{false, true} {
		if typ, _, err := decodeEvent(frame, drop); err != nil || typ != "DELETED" {
			t.Errorf("managedFields dropped: %v: %s, %v; want DELETED, the key given last", drop, typ, err)
		}
	}
}
