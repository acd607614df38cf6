package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/opgate/opgate/gateway/inspect"
)

// kubeconfigFile writes a kubeconfig for a server nothing listens on: the
// errors tested here must come before any request.
func kubeconfigFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStatusAndReconcileRefuseBadArgumentsClearly(t *testing.T) {
	kc := kubeconfigFile(t)
	file := "../../examples/operators/memcached.yaml"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown output", []string{"status", "-o", "xml", "--kubeconfig", kc}, `-o "xml": want json or yaml`},
		{"operator not in the files", []string{"status", "nope", "-f", file, "--kubeconfig", kc}, `operator "nope" is not in the files given with -f`},
		{"reconcile needs the object", []string{"reconcile", "memcached", "--kubeconfig", kc}, "accepts 2 arg(s)"},
		{"too many arguments", []string{"status", "a", "b", "c", "--kubeconfig", kc}, "accepts at most 2 arg(s)"},
		{"object key", []string{"status", "memcached", "a/b/c", "-f", file, "--kubeconfig", kc}, `"a/b/c": want NAMESPACE/NAME`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := execute(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestStatusTextNamesTheFailingObjectItsErrorAndNextRetry(t *testing.T) {
	next := time.Date(2026, 11, 30, 14, 21, 7, 0, time.UTC)
	op := inspect.Operator{Name: "memcached", Watch: "cache.example.com/v1alpha1/Memcached", Ready: inspect.Readiness{Ready: true}, Objects: 2, Failing: 1,
		Unsettled: []inspect.Object{{Namespace: "shop", Name: "broken", State: inspect.BackingOff,
			Failure: &inspect.Failure{Callback: "create", Class: "temporary", Reason: "HandlerError", Message: "database down", Attempts: 4, NextRetry: &next}}}}
	var buf bytes.Buffer
	if err := printUnsettled(&buf, report{Operator: op}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"shop/broken", "backing_off", "create", "4", "2026-11-30T14:21:07Z", "temporary HandlerError: database down", "2 objects, 1 failing"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestStatusTextCountsInTheSingularAndPlural(t *testing.T) {
	detail := func(attempts int) func(*bytes.Buffer) error {
		d := inspect.Detail{Object: inspect.Object{Namespace: "shop", Name: "broken", State: inspect.BackingOff,
			Failure: &inspect.Failure{Callback: "create", Class: "temporary", Attempts: attempts}}}
		return func(b *bytes.Buffer) error { return printDetail(b, d, time.Now()) }
	}
	unsettled := func(r report) func(*bytes.Buffer) error {
		return func(b *bytes.Buffer) error { return printUnsettled(b, r) }
	}
	tests := []struct {
		name  string
		print func(*bytes.Buffer) error
		want  string
	}{
		{"one object", unsettled(report{Operator: inspect.Operator{Name: "m", Objects: 1}}), ", 1 object, 0 failing"},
		{"two objects", unsettled(report{Operator: inspect.Operator{Name: "m", Objects: 2}}), ", 2 objects, 0 failing"},
		{"no objects", unsettled(report{Operator: inspect.Operator{Name: "m"}}), ", 0 objects, 0 failing"},
		{"unknown", unsettled(report{Operator: inspect.Operator{Name: "m"}, Error: "forbidden"}), ", ? objects, ? failing"},
		{"one attempt", detail(1), "create after 1 attempt: temporary"},
		{"four attempts", detail(4), "create after 4 attempts: temporary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.print(&buf); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, buf.String())
			}
		})
	}
}

// The round of a change taken back calls only the callback that acted on
// it: the detail says it is owed the essence now, and which essence it
// acted on (its old), rather than list every update callback as waiting.
func TestStatusDetailSaysWhichCallbackIsOwedWhichEssence(t *testing.T) {
	d := inspect.Detail{Object: inspect.Object{Namespace: "shop", Name: "cache", State: inspect.Pending},
		Round: &inspect.Round{Event: "update", Done: []string{}, Waiting: []string{"resize"},
			Owed: []inspect.Owed{{Callback: "resize", ActedOn: "5e6f7a8b9c0d1e2f"}}}}
	var buf bytes.Buffer
	if err := printDetail(&buf, d, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"round:       update, done [], waiting [resize]\n",
		"owed:        resize the essence now, having acted on 5e6f7a8b9c0d, a change taken back (its old)\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
}

// Handlers' messages and Events, and anyone who may edit an object's
// annotations or a Lease, reach the terminal of whoever runs status: their
// control characters are escaped (an ESC sequence would rewrite the
// terminal, \r overwrite the line, \t break the table's columns), ordinary
// unicode is left readable.
func TestStatusTextEscapesControlCharactersOfWhatOthersWrote(t *testing.T) {
	const hostile = "db down\x1b]0;owned\x07\x1b[2J\rOK\tsettled\u202egröße\u0085"
	const escaped = `db down\x1b]0;owned\a\x1b[2J\rOK\tsettled\u202egröße\u0085`
	failure := func() *inspect.Failure {
		return &inspect.Failure{Callback: "create", Class: "temporary", Reason: "HandlerError", Message: hostile, Attempts: 1}
	}
	unsettled := func(r report) func(*bytes.Buffer) error {
		return func(b *bytes.Buffer) error { return printUnsettled(b, r) }
	}
	operators := func(r report) func(*bytes.Buffer) error {
		return func(b *bytes.Buffer) error { return printOperators(b, []report{r}) }
	}
	detail := func(d inspect.Detail) func(*bytes.Buffer) error {
		return func(b *bytes.Buffer) error { return printDetail(b, d, time.Now()) }
	}
	obj := inspect.Object{Namespace: "shop", Name: "broken", State: inspect.Failing}
	tests := []struct {
		name  string
		print func(*bytes.Buffer) error
	}{
		{"a failure's message", unsettled(report{Operator: inspect.Operator{Name: "m", Unsettled: []inspect.Object{{Namespace: "shop", Name: "broken", State: inspect.Failing, Failure: failure()}}}})},
		{"a failure's reason", unsettled(report{Operator: inspect.Operator{Name: "m", Unsettled: []inspect.Object{{Namespace: "shop", Name: "broken", State: inspect.Failing,
			Failure: &inspect.Failure{Callback: "create", Class: "temporary", Reason: hostile}}}}})},
		{"Ready's message", unsettled(report{Operator: inspect.Operator{Name: "m", Ready: inspect.Readiness{Reason: "HandlerUnreachable", Message: hostile}}})},
		{"Ready's reason", operators(report{Operator: inspect.Operator{Name: "m", Ready: inspect.Readiness{Reason: hostile}}})},
		{"the Lease's holder", operators(report{Operator: inspect.Operator{Name: "m", Ready: inspect.Readiness{Ready: true}}, Gateway: &writerCheck{Stale: true, Why: hostile}})},
		{"a refused spec", operators(report{Operator: inspect.Operator{Name: "m"}, SpecError: hostile})},
		{"the detail's failure", detail(inspect.Detail{Object: inspect.Object{Namespace: "shop", Name: "broken", State: inspect.Failing, Failure: failure()}})},
		{"an Event's message and reason", detail(inspect.Detail{Object: obj, Events: []inspect.Event{{Type: "Warning", Reason: hostile, Message: hostile, Last: time.Now()}}})},
		{"an unreadable state", detail(inspect.Detail{Object: inspect.Object{Namespace: "shop", Name: "broken", State: inspect.Failing, StateError: hostile}})},
		{"a reconcile request's value", detail(inspect.Detail{Object: obj, Reconcile: inspect.Reconcile{Requested: hostile}})},
		{"a round's callbacks", detail(inspect.Detail{Object: obj, Round: &inspect.Round{Event: "update", Done: []string{hostile}, Waiting: []string{hostile}}})},
		{"a callback's failure", detail(inspect.Detail{Object: obj, Callbacks: []inspect.Callback{{ID: "create", Events: []string{"create"}, State: "failing", Failure: failure()}}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.print(&buf); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			for _, r := range out {
				if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)) {
					t.Fatalf("output holds the raw control character %U:\n%q", r, out)
				}
			}
			if !strings.Contains(out, escaped) {
				t.Errorf("output lacks the text escaped, %s:\n%s", escaped, out)
			}
		})
	}
}

// Ready's message of an operator whose spec was never valid holds one
// error per line; escaping must not join them into one line with a
// literal \n. Each line is escaped and indented on its own, as a refused
// spec's errors are.
func TestStatusTextPrintsEachLineOfReadysMessageOnItsOwn(t *testing.T) {
	tests := []struct {
		name    string
		message string
		want    string
	}{
		{"the spec's errors, one per line",
			"memcached: /spec/watch/kind: must be set\nmemcached: /spec/callbacks/0/id: must be set",
			"  memcached: /spec/watch/kind: must be set\n  memcached: /spec/callbacks/0/id: must be set\n"},
		{"a line with a control character",
			"first\nsecond\x1b[2J",
			"  first\n  second\\x1b[2J\n"},
		{"one line", "handler unreachable", "  handler unreachable\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			r := report{Operator: inspect.Operator{Name: "memcached", Ready: inspect.Readiness{Reason: "InvalidSpec", Message: tt.message}}, Error: "its objects cannot be told"}
			if err := printUnsettled(&b, r); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tt.want) {
				t.Errorf("output lacks\n%s\ngot:\n%s", tt.want, b.String())
			}
		})
	}
}
