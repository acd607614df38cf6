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
)

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
