package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// LoadFiles parses the given files (a directory stands for its *.yaml,
// *.yml and *.json files) like Parse, and refuses an operator name defined
// twice, in one file or across files, and a file or directory that defines
// none: given by mistake, it would leave `gateway run -f` watching nothing.
// A file given more than once (by its directory and by name) is read once.
// It reports the errors of every file, not only of the first bad one.
func LoadFiles(paths ...string) ([]*WebhookOperator, error) {
	files, errs, err := expandPaths(paths)
	if err != nil {
		return nil, err
	}
	var entries []parsed
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &FieldError{Source: path, Message: fmt.Sprintf("read: %v", err)})
			continue
		}
		e, fileErrs, err := parseSource(data, path)
		if err != nil {
			return nil, err
		}
		if len(e) == 0 && len(fileErrs) == 0 {
			fileErrs = ErrorList{{Source: path, Message: "no WebhookOperator documents"}}
		}
		entries = append(entries, e...)
		errs = append(errs, fileErrs...)
	}
	errs = append(errs, duplicateNames(entries)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return operators(entries), nil
}

// expandPaths replaces each directory by the manifest files directly in it,
// in name order, so that `-f operators/` works as with kubectl. A directory
// without any is reported in the list.
func expandPaths(paths []string) ([]string, ErrorList, error) {
	if len(paths) == 0 {
		return nil, nil, errors.New("no files given")
	}
	var (
		files []string
		errs  ErrorList
	)
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil || !info.IsDir() {
			files = append(files, p) // a missing file is reported by the reader, with the others
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, nil, fmt.Errorf("read directory %s: %w", p, err)
		}
		n := len(files)
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
		}
		if len(files) == n {
			errs = append(errs, &FieldError{Source: p, Message: "no .yaml, .yml or .json files"})
		}
	}
	return withoutRepeats(files), errs, nil
}

// withoutRepeats keeps the first of the names that stand for one file
// (`-f operators/ -f operators/memcached.yaml`, a second spelling, a
// symbolic link): read twice, its operators would be refused as defined
// twice.
func withoutRepeats(files []string) []string {
	var (
		kept  []string
		infos []os.FileInfo
		names = map[string]bool{}
	)
	for _, f := range files {
		if names[filepath.Clean(f)] {
			continue
		}
		names[filepath.Clean(f)] = true
		info, err := os.Stat(f)
		if err == nil {
			if slices.ContainsFunc(infos, func(i os.FileInfo) bool { return os.SameFile(i, info) }) {
				continue
			}
			infos = append(infos, info)
		}
		kept = append(kept, f)
	}
	return kept
}

// duplicateNames refuses a second operator with the same name: both would
// hold the same finalizer and state annotation on the same objects.
func duplicateNames(entries []parsed) ErrorList {
	first := map[string]parsed{}
	var errs ErrorList
	for _, e := range entries {
		name := e.op.Name
		prev, seen := first[name]
		if !seen {
			first[name] = e
			continue
		}
		where := fmt.Sprintf("document %d", prev.document)
		if prev.source != e.source {
			where = fmt.Sprintf("%s (document %d)", prev.source, prev.document)
		}
		errs = append(errs, &FieldError{
			Source: e.source, Line: e.nameLine, Document: e.document, Operator: name,
			Path:    "/metadata/name",
			Message: fmt.Sprintf("operator %q is already defined in %s", name, where),
		})
	}
	return errs
}

func operators(entries []parsed) []*WebhookOperator {
	ops := make([]*WebhookOperator, len(entries))
	for i, e := range entries {
		ops[i] = e.op
	}
	return ops
}
