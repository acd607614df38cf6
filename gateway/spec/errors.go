package spec

import (
	"fmt"
	"strings"
)

// FieldError is one problem with a WebhookOperator, located as precisely as
// it is known, so that a user can go straight to the line that is wrong.
type FieldError struct {
	// Source names where the document came from (a file name); empty for
	// objects read from the cluster.
	Source string
	// Line is the 1-based line in Source; 0 when unknown.
	Line int
	// Document is the 1-based index of the YAML document in Source; 0 when
	// the object did not come from a file.
	Document int
	// Operator is the operator's metadata.name when it is known.
	Operator string
	// Path is a JSON pointer into the document, such as
	// /spec/callbacks/1/on/0; empty when the error is about the whole input.
	Path string
	// Message says what is wrong.
	Message string
}

// Error renders the error as
// "source:line: document N (name): /json/pointer: message",
// leaving out the parts that are unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	switch {
	case e.Document > 0 && e.Operator != "":
		fmt.Fprintf(&b, "document %d (%s): ", e.Document, e.Operator)
	case e.Document > 0:
		fmt.Fprintf(&b, "document %d: ", e.Document)
	case e.Operator != "":
		fmt.Fprintf(&b, "%s: ", e.Operator)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// ErrorList is every problem found in one validation, never just the first:
// a user fixing a registration should see all of them at once.
type ErrorList []*FieldError

// Error renders one error per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As and errors.Is look at each FieldError.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Err returns the list as an error, or nil when it is empty; returning an
// empty ErrorList as an error would make err != nil true.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// locate fills in where the errors came from, keeping what is already set.
func (l ErrorList) locate(source string, document int, operator string) {
	for _, e := range l {
		if e.Source == "" {
			e.Source = source
		}
		if e.Document == 0 {
			e.Document = document
		}
		if e.Operator == "" {
			e.Operator = operator
		}
	}
}
