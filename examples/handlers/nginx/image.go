package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// The grammar of an image reference, after the one container registries
// and runtimes share (name [":" tag] ["@" digest]). These are constants in
// all but name.
var (
	domainPattern        = regexp.MustCompile(`^(?:\[[0-9a-fA-F:]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]+)?$`)
	pathComponentPattern = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagPattern           = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	digestPattern        = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$`)
)

// maxNameLength bounds the repository name, domain included.
const maxNameLength = 255

// errNoTag means the reference is valid but names no tag (nor digest), so
// the runtime would pick "latest", which changes under our feet.
var errNoTag = errors.New("image tag is empty")

// checkImage says whether ref can run: nil, errNoTag when it lacks a tag
// (a user is likely still writing it), or another error when no edit
// short of rewriting it can make it valid.
func checkImage(ref string) error {
	if i := strings.IndexFunc(ref, unicode.IsSpace); i >= 0 {
		return fmt.Errorf("whitespace at byte %d", i)
	}
	rest, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest && !digestPattern.MatchString(digest) {
		return fmt.Errorf("digest %q is not algorithm:hex", digest)
	}
	name, tag, hasTag := rest, "", false
	// A colon after the last slash starts the tag; one before it is a
	// registry port.
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		name, tag, hasTag = rest[:i], rest[i+1:], true
	}
	if err := checkName(name); err != nil {
		return err
	}
	switch {
	case hasTag && tag == "":
		return errNoTag
	case hasTag && !tagPattern.MatchString(tag):
		return fmt.Errorf("tag %q is not up to 128 letters, digits, '_', '.' or '-' (not starting with '.' or '-')", tag)
	case !hasTag && !hasDigest:
		return errNoTag
	}
	return nil
}

// checkName checks [domain "/"] path, where path is lowercase components
// separated by slashes.
func checkName(name string) error {
	if name == "" {
		return errors.New("no repository name")
	}
	if len(name) > maxNameLength {
		return fmt.Errorf("repository name is longer than %d characters", maxNameLength)
	}
	domain, path := splitDomain(name)
	if domain != "" && !domainPattern.MatchString(domain) {
		return fmt.Errorf("registry %q is not a host name with an optional port", domain)
	}
	for _, c := range strings.Split(path, "/") {
		if strings.ToLower(c) != c {
			return fmt.Errorf("repository %q has uppercase letters; repositories are lowercase", path)
		}
		if !pathComponentPattern.MatchString(c) {
			return fmt.Errorf("repository component %q is not lowercase letters and digits separated by '.', '_', '__' or '-'", c)
		}
	}
	return nil
}

// splitDomain separates a registry host from the repository path the way
// runtimes do: the first component is a host when a path follows it and
// it has a dot, a port, uppercase letters, or is localhost.
func splitDomain(name string) (domain, path string) {
	first, rest, ok := strings.Cut(name, "/")
	if !ok {
		return "", name
	}
	if strings.ContainsAny(first, ".:[") || first == "localhost" || strings.ToLower(first) != first {
		return first, rest
	}
	return "", name
}
