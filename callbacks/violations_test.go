package callbacks

import (
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// The schema validator is the tests' oracle: these functions turn its
// errors into Violations, the words and paths the Go checks
// (requestcheck.go, responsecheck.go) must give for the same document.

// violationsOf flattens the library's error tree into its leaves, one
// violation per missing or unknown property, sorted by path so the message
// is the same for the same document.
func violationsOf(ve *jsonschema.ValidationError) []Violation {
	var out []Violation
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, leafViolations(e)...)
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return sortedViolations(out)
}

func leafViolations(e *jsonschema.ValidationError) []Violation {
	keyword := e.KeywordLocation[strings.LastIndexByte(e.KeywordLocation, '/')+1:]
	// "required" and "additionalProperties" name the properties in the
	// message but point at their parent; point at each property instead, so
	// the path says exactly which field to add or remove.
	var names []string
	var message string
	switch keyword {
	case "required":
		names, message = quotedNames(strings.TrimPrefix(e.Message, "missing properties: ")), "missing property"
	case "additionalProperties":
		rest := strings.TrimSuffix(strings.TrimPrefix(e.Message, "additionalProperties "), " not allowed")
		names, message = quotedNames(rest), "unknown property"
	}
	if len(names) > 0 {
		out := make([]Violation, 0, len(names))
		for _, n := range names {
			out = append(out, Violation{Path: e.InstanceLocation + "/" + escapePointer(n), Message: message})
		}
		return out
	}
	msg := e.Message
	if i := strings.IndexByte(e.AbsoluteKeywordLocation, '#'); i >= 0 {
		if friendly, ok := friendlyMessage(e.AbsoluteKeywordLocation[i:]); ok {
			msg = friendly
		}
	}
	return []Violation{{Path: e.InstanceLocation, Message: msg}}
}

// quotedNames parses the library's list of property names: each in single
// quotes, Go-escaped except that ' is escaped and " is not, joined by ", ".
// It returns nil when s is not such a list, so the caller keeps the
// library's own message rather than guess.
func quotedNames(s string) []string {
	var names []string
	for s != "" {
		if s[0] != '\'' {
			return nil
		}
		end := 1
		for end < len(s) && s[end] != '\'' {
			if s[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(s) {
			return nil
		}
		inner := strings.ReplaceAll(s[1:end], `\'`, `'`)
		name, err := strconv.Unquote(`"` + strings.ReplaceAll(inner, `"`, `\"`) + `"`)
		if err != nil {
			return nil
		}
		names = append(names, name)
		s = s[end+1:]
		if s != "" {
			if !strings.HasPrefix(s, ", ") {
				return nil
			}
			s = s[2:]
		}
	}
	return names
}
