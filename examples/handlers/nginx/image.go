package main

import (
	"errors"
	"strings"

	"github.com/distribution/reference"
)

// errNoTag means the reference is valid but names no tag (nor digest), so
// the runtime would pick "latest", which changes under our feet.
var errNoTag = errors.New("image tag is empty")

// checkImage says whether ref can run: nil, errNoTag when it lacks a tag
// (its author is likely still writing it), or the parser's error (such as
// reference.ErrReferenceInvalidFormat) when no edit short of rewriting it
// can make it valid. The grammar is the one registries and runtimes share,
// from github.com/distribution/reference.
func checkImage(ref string) error {
	// "nginx:" is not in the grammar, but it is "nginx" with its tag being
	// typed. A colon before the last slash would be a registry's port.
	name, emptyTag := strings.CutSuffix(ref, ":")
	if emptyTag && strings.LastIndexByte(name, ':') > strings.LastIndexByte(name, '/') {
		return reference.ErrReferenceInvalidFormat // "nginx::"
	}
	parsed, err := reference.Parse(name)
	if err != nil {
		return err
	}
	_, tagged := parsed.(reference.Tagged)
	_, digested := parsed.(reference.Digested)
	if emptyTag || (!tagged && !digested) {
		return errNoTag
	}
	return nil
}
