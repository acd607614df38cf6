package callbacks

import "fmt"

// Limits on the shape of a handler's answer, checked before it is parsed:
// within the byte limit, a body of nothing but brackets or of tiny elements
// still costs the decoder and the schema validator far more memory and time
// than any real answer, which nests a few Kubernetes objects.
const (
	// MaxResponseDepth is how deep objects and arrays may nest, the
	// top-level object counting as one.
	MaxResponseDepth = 100
	// MaxResponseElements bounds the array elements and object members of
	// the whole answer together.
	MaxResponseElements = 500_000
	// DefaultMaxResponseBytes is the largest answer the gateway reads
	// unless its --max-response-bytes says otherwise; a larger one is
	// refused whole.
	DefaultMaxResponseBytes = 8 << 20
)

// checkLimits refuses an encoded answer the gateway would not read: one
// larger than maxBytes, its --max-response-bytes, or past checkShape's
// limits, which it checks with DecodeResponse.
func checkLimits(body []byte, maxBytes int64) *Violation {
	if n := int64(len(body)); n > maxBytes {
		name := "WithMaxResponseBytes"
		if maxBytes == DefaultMaxResponseBytes {
			name = "DefaultMaxResponseBytes"
		}
		return &Violation{Message: fmt.Sprintf("is %d bytes, over the %d bytes the gateway reads (%s, its --max-response-bytes)", n, maxBytes, name)}
	}
	return checkShape(body)
}

// checkShape refuses a body that nests deeper than MaxResponseDepth or
// holds more than MaxResponseElements elements. It counts brackets and
// commas outside strings and leaves every syntax error to the parser, so it
// never refuses valid JSON within the limits.
func checkShape(body []byte) *Violation {
	depth, elements := 0, 0
	inString, escaped := false, false
	for i, b := range body {
		if inString {
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			}
			continue
		}
		switch b {
		case '"':
			inString = true
		case '{', '[':
			depth++
			elements++ // the container's first element, if any
			if depth > MaxResponseDepth {
				return &Violation{Message: fmt.Sprintf("nests deeper than %d levels (MaxResponseDepth) at byte %d", MaxResponseDepth, i)}
			}
		case '}', ']':
			depth--
		case ',':
			elements++
		}
		if elements > MaxResponseElements {
			return &Violation{Message: fmt.Sprintf("holds more than %d elements (MaxResponseElements) by byte %d", MaxResponseElements, i)}
		}
	}
	return nil
}
