package callbacks

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// ContractError says why a request or response breaks the contract. Its
// message lists the violations with their JSON paths on one line, fit for a
// Kubernetes Warning Event.
type ContractError struct {
	Document   string // "request" or "response"
	Violations []Violation
}

// Violation is one way a document breaks the contract.
type Violation struct {
	// Path is a JSON pointer (RFC 6901) to the offending value, such as
	// "/children/0/kind"; empty for the document as a whole.
	Path    string
	Message string
}

func (v Violation) String() string {
	if v.Path == "" {
		return v.Message
	}
	return v.Path + ": " + v.Message
}

// maxListedViolations bounds the message: an 8 MiB body with thousands of
// bad children must not become an Event the API server refuses. Violations
// keeps them all.
const maxListedViolations = 10

func (e *ContractError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s does not match the opgate contract: ", e.Document)
	for i, v := range e.Violations {
		if i == maxListedViolations {
			fmt.Fprintf(&b, "; and %d more", len(e.Violations)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.String())
	}
	return b.String()
}

// friendlyMessage replaces the schema library's message for keywords whose
// raw message ("does not match pattern '^(0|([0-9]+...'") would not help a
// handler author. keywordLocation is the keyword's place in its schema file.
func friendlyMessage(keywordLocation string) (string, bool) {
	switch keywordLocation {
	case "#/$defs/duration/pattern":
		return `must be a Go duration such as "30s", "1m30s" or "250ms"`, true
	case "#/$defs/reason/pattern":
		return `must be a CamelCase word such as "Scaled"`, true
	}
	return "", false
}

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
	slices.SortFunc(out, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Message, b.Message))
	})
	return slices.Compact(out)
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

// escapePointer escapes a property name as a JSON pointer token (RFC 6901).
func escapePointer(name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}
