package callbacks

import (
	"fmt"
	"strings"
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

// escapePointer escapes a property name as a JSON pointer token (RFC 6901).
func escapePointer(name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}
