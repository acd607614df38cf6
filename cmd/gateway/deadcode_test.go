package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLinkerDropsUnusedMethods guards the binary's size (and so the
// gateway's resident memory, docs/performance.md "Memory"): when any
// function reachable from main looks methods up by a name known only at
// run time, as text/template's execution and html/template do, the Go
// linker must keep every exported method of every type stored in an
// interface, which doubles the binary. The test links the gateway with
// the linker's dependency dump, fails on any such function with the chain
// that reaches it, and checks that template execution is absent.
func TestLinkerDropsUnusedMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("links the gateway binary")
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	goCmd := "go" // the one `go test` found on PATH (runtime.GOROOT is deprecated)
	cmd := exec.Command(goCmd, "build", "-o", bin, "-ldflags=-dumpdep", ".")
	var dump bytes.Buffer
	cmd.Stderr = &dump // the linker's "from -> to" lines
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v\n%.2000s", err, dump.String())
	}
	parent := map[string]string{} // each symbol is printed once, when first reached
	var flagged []string
	sc := bufio.NewScanner(&dump)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		from, to, ok := strings.Cut(sc.Text(), " -> ")
		if !ok {
			continue
		}
		parent[to] = from
		if strings.Contains(to, "<ReflectMethod>") {
			flagged = append(flagged, to)
		}
	}
	if len(flagged) > 0 {
		// The first is the cause: once one is reached, the exported
		// methods it makes reachable bring in the others.
		t.Errorf("%s looks methods up by a name known at run time, so the linker keeps every exported method; reached by:\n%s\nthen %d more: %.500s",
			flagged[0], chain(parent, flagged[0]), len(flagged)-1, strings.Join(flagged[1:], ", "))
	}

	out, err := exec.Command(goCmd, "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	for _, sym := range []string{"text/template.(*state).evalCall", "html/template.(*escaper).escape"} {
		if bytes.Contains(out, []byte(" "+sym+"\n")) {
			t.Errorf("%s is in the binary: a template is executed somewhere", sym)
		}
	}
}

// chain is the path from main to sym in the linker's dump, one per line.
func chain(parent map[string]string, sym string) string {
	var path []string
	for s, n := sym, 0; s != "" && s != "_" && n < 30; s, n = parent[s], n+1 {
		path = append(path, "  "+s)
	}
	return strings.Join(path, "\n")
}
