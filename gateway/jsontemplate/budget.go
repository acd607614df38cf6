package jsontemplate

import (
	"fmt"
	"strconv"
)

// Before a builtin builds a string, spend estimates how long it can be and
// charges that to the rendering: the estimate must stay within maxOutput,
// and all of a rendering's within maxBuilt. Counting the output after the
// call would be too late: fmt would have built a string of any size, and
// a range would build one per iteration.

// growth is how much longer than its arguments a builtin's result can be.
var growth = map[string]int{"print": 1, "println": 1, "printf": 1, "html": 6, "js": 6, "urlquery": 3}

func (s *state) spend(name string, args []any) error {
	factor, builds := growth[name]
	if !builds {
		return nil // the others return a value of their arguments, or a bool or int
	}
	size := 0
	if name == "printf" {
		format := args[0].(string) // validateType made it one
		widths, err := checkWidths(format, args[1:])
		if err != nil {
			return err
		}
		size = len(format) + widths
		args = args[1:]
	}
	for _, a := range args {
		size += approxSize(a, maxOutput-size)
		if size > maxOutput {
			break
		}
	}
	size *= factor
	if size > maxOutput {
		return fmt.Errorf("%w: %s could build more than %d bytes", ErrTooLarge, name, maxOutput)
	}
	if s.built += size; s.built > maxBuilt {
		return fmt.Errorf("%w: the builtins built more than %d bytes", ErrTooLarge, maxBuilt)
	}
	return nil
}

// checkWidths refuses a printf width or precision over maxWidth, written
// in the format or taken from an argument (*), and sums them: the padding
// a verb may add to its argument's own length.
func checkWidths(format string, args []any) (widths int, err error) {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		for i++; i < len(format); i++ {
			c := format[i]
			switch {
			case c == '*':
				// Any integer argument may be the one * takes.
				for _, a := range args {
					if n, ok := intValue(a); ok && (n > maxWidth || n < -maxWidth) {
						return 0, fmt.Errorf("%w: printf width or precision %d over %d", ErrTooLarge, n, maxWidth)
					}
				}
				widths += maxWidth
			case c >= '0' && c <= '9':
				j := i
				for j < len(format) && format[j] >= '0' && format[j] <= '9' {
					j++
				}
				n, err := strconv.Atoi(format[i:j])
				if err != nil || n > maxWidth {
					return 0, fmt.Errorf("%w: printf width or precision %s over %d", ErrTooLarge, format[i:j], maxWidth)
				}
				widths += n
				i = j - 1
			case c == '.' || c == '+' || c == '-' || c == '#' || c == ' ' || c == '[' || c == ']':
			default:
				goto verb
			}
		}
	verb:
	}
	return widths, nil
}

// approxSize bounds the length of v printed by fmt, stopping once it
// passes limit (the walk is bounded too).
func approxSize(v any, limit int) int {
	switch v := v.(type) {
	case string:
		return len(v)
	case map[string]any:
		n := 5 // map[]
		for k, e := range v {
			if n > limit {
				return n
			}
			n += len(k) + 2 + approxSize(e, limit-n)
		}
		return n
	case []any:
		n := 2
		for _, e := range v {
			if n > limit {
				return n
			}
			n += 1 + approxSize(e, limit-n)
		}
		return n
	case nil:
		return len("<no value>")
	}
	return 32 // a number, bool or byte: at most 24 characters as %v
}
