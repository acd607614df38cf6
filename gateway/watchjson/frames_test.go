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
// reads a value that is no object) frameReader yields nothing valid.
func framesMatchDecoder(t *testing.T, stream []byte, bufSize, chunk int) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(stream))
	f := &frameReader{r: &chunks{data: stream, n: chunk}, buf: make([]byte, bufSize)}
	for i := 0; ; i++ {
		var want json.RawMessage
		werr := dec.Decode(&want)
		got, err := f.next()
		switch {
		case werr == nil && len(want) > 0 && want[0] == '{':
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("frame %d of %q: %q, %v; json.Decoder read %q", i, stream, got, err, want)
			}
		case errors.Is(werr, io.EOF):
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after frame %d of %q: %q, %v; want io.EOF as json.Decoder", i, stream, got, err)
			}
			return
		default:
			if err == nil && json.Valid(got) {
				t.Fatalf("frame %d of %q: %q, valid JSON; json.Decoder: %q, %v", i, stream, got, want, werr)
			}
			var notObject *notAnObjectError
			if errors.Is(werr, io.ErrUnexpectedEOF) && err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &notObject) {
				t.Fatalf("frame %d of %q cut short: %v; want io.ErrUnexpectedEOF as json.Decoder", i, stream, err)
			}
			return
		}
	}
}

var frameStreams = []string{
	``, ` `, `{}`, "{}\n{}\n", `{"type":"ADDED","object":{"a":"}]{[\"\\","b":[1,{"c":null}]}}` + "\n",
	"\t\r\n {\"a\" : [ ] }  {\"b\":\"\\u0022}\"}\n", `{"a":1`, `{"a":"\`, `{}x`, `{} 1`, `[]`, `"s"`, `{"a":}}`,
	`{"a":1}}`, `}`, `<html>`, `{"a":"` + string(bytes.Repeat([]byte("é}"), 40)) + `"}`,
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
