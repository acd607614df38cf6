package watchjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/opgate/opgate/gateway/jsonscan"
	"k8s.io/apimachinery/pkg/runtime"
	sjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// frameReader splits a watch stream, JSON objects one after the other, into
// the objects' bytes. The API server writes each event compact, on a line
// of its own; for such frames it finds the end by counting brackets
// outside strings, and leaves the syntax check to the decoder that reads
// the frame. json.Decoder, which client-go's framer uses too, runs the
// syntax checker's state machine over every byte to find the same end,
// and copies the frame out. Anything else (whitespace between the tokens
// of an object, a control character in a string, a stream that ends
// inside an object) hands the rest of the stream to json.Decoder, so that
// a broken or pretty-printed stream is split, and refused, as json.Decoder
// does: a broken event never swallows the ones after it.
type frameReader struct {
	r io.Reader
	// buf[start:end] is read and not yet returned; a frame being scanned
	// begins at start, and buf[start:scanned] holds no end of it.
	buf                 []byte
	start, end, scanned int
	// The scan's state at scanned.
	depth            int
	inString, escape bool
	// read counts the bytes consumed before buf[0], for error offsets.
	read int64
	// dec reads the rest of the stream once the scan has handed it over,
	// at offset decAt of the stream.
	dec   *json.Decoder
	decAt int64
}

func newFrames(r io.Reader) *frameReader {
	return &frameReader{r: r, buf: make([]byte, 32<<10)}
}

// next returns the next object's bytes, valid until the following call.
// Where the stream ends, or cannot be read, it returns what json.Decoder
// returns: io.EOF between objects, io.ErrUnexpectedEOF inside one, a
// *json.SyntaxError, the reader's own error; and an error for a value
// that is not an object.
func (f *frameReader) next() ([]byte, error) {
	if f.dec != nil {
		return f.decode()
	}
	for {
		if f.depth == 0 {
			// Between frames: skip whitespace to the next object.
			for f.start < f.end && jsonscan.IsSpace(f.buf[f.start]) {
				f.start++
			}
			f.scanned = f.start
			if f.start < f.end {
				if c := f.buf[f.start]; c != '{' {
					return nil, &notAnObjectError{c: c, offset: f.read + int64(f.start)}
				}
			}
		}
		frame, ok, plain := f.scan()
		if ok {
			return frame, nil
		}
		if !plain {
			return f.handOver(f.r)
		}
		if err := f.fill(); err != nil {
			if err == io.EOF && f.depth > 0 {
				// json.Decoder tells a cut object from a broken one.
				return f.handOver(eofReader{})
			}
			return nil, err
		}
	}
}

// handOver gives json.Decoder the unreturned bytes and then rest.
func (f *frameReader) handOver(rest io.Reader) ([]byte, error) {
	pending := f.buf[f.start:f.end]
	f.decAt = f.read + int64(f.start)
	f.buf = nil
	f.dec = json.NewDecoder(io.MultiReader(bytes.NewReader(pending), rest))
	return f.decode()
}

func (f *frameReader) decode() ([]byte, error) {
	var frame json.RawMessage
	if err := f.dec.Decode(&frame); err != nil {
		return nil, err
	}
	if frame[0] != '{' {
		return nil, &notAnObjectError{c: frame[0], offset: f.decAt + f.dec.InputOffset() - int64(len(frame))}
	}
	return frame, nil
}

// eofReader is a stream that has ended.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// scan goes on from scanned to the end of the object begun at start. ok:
// the object ends there. plain is false at a byte the scan leaves to
// json.Decoder: whitespace outside strings inside the object, or a
// control character in a string (which JSON refuses there, and the API
// server's newline after a cut string would be).
func (f *frameReader) scan() (frame []byte, ok, plain bool) {
	b := f.buf[:f.end]
	for i := f.scanned; i < len(b); i++ {
		c := b[i]
		if f.inString {
			switch {
			case c < 0x20:
				return nil, false, false
			case f.escape:
				f.escape = false
			case c == '\\':
				f.escape = true
			case c == '"':
				f.inString = false
			}
			continue
		}
		switch c {
		case '"':
			f.inString = true
		case '{', '[':
			f.depth++
		case '}', ']':
			f.depth--
			if f.depth <= 0 {
				// A stray closing bracket ends the frame too: the decoder
				// refuses it.
				f.depth = 0
				frame := b[f.start : i+1]
				f.start, f.scanned = i+1, i+1
				return frame, true, true
			}
		case ' ', '\t', '\n', '\r':
			return nil, false, false
		}
	}
	f.scanned = len(b)
	return nil, false, true
}

// fill reads more of the stream, first moving what is unreturned to the
// front of buf, and growing buf when a frame fills it.
func (f *frameReader) fill() error {
	if f.start > 0 {
		n := copy(f.buf, f.buf[f.start:f.end])
		f.read += int64(f.start)
		f.scanned -= f.start
		f.start, f.end = 0, n
	}
	if f.end == len(f.buf) {
		f.buf = append(f.buf, make([]byte, len(f.buf))...)
	}
	// As bufio.Reader: a reader that keeps answering nothing is broken.
	for range 100 {
		n, err := f.r.Read(f.buf[f.end:])
		f.end += n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// notAnObjectError: the stream holds a value other than an object (or
// something that is no JSON), which no watch event is.
type notAnObjectError struct {
	c      byte
	offset int64
}

func (e *notAnObjectError) Error() string {
	return fmt.Sprintf("invalid character %q looking for the beginning of a watch event at byte %d", e.c, e.offset)
}

// Framer is client-go's JSON framer (runtime.Framer) with frameReader in
// place of its json.Decoder: the watch frames of a REST client whose
// serializer checks each frame as it decodes it (the reader does not).
var Framer runtime.Framer = framer{}

type framer struct{}

func (framer) NewFrameReader(r io.ReadCloser) io.ReadCloser {
	return &frameStream{frames: newFrames(r), Closer: r}
}

func (framer) NewFrameWriter(w io.Writer) io.Writer { return sjson.Framer.NewFrameWriter(w) }

// frameStream reads one frame per Read, as client-go's frame readers do:
// a frame larger than the caller's buffer comes in parts, each but the
// last with io.ErrShortBuffer.
type frameStream struct {
	frames *frameReader
	io.Closer
	rest []byte // of the frame being read: a slice of frames' buffer
}

func (s *frameStream) Read(p []byte) (int, error) {
	if len(s.rest) == 0 {
		frame, err := s.frames.next()
		if err != nil {
			return 0, err
		}
		s.rest = frame
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	if len(s.rest) > 0 {
		return n, io.ErrShortBuffer
	}
	return n, nil
}
