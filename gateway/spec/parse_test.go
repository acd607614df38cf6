package spec

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// minimal is a valid document; tests append to or replace parts of it.
const minimal = `apiVersion: opgate.dev/v1alpha1
kind: WebhookOperator
metadata:
  name: memcached
spec:
  watch:
    apiVersion: cache.example.com/v1alpha1
    kind: Memcached
  handler:
    url: http://127.0.0.1:8081
  callbacks:
    - id: create
      events: [create]
`

func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestParseReportsEveryErrorWithSourceDocumentLineAndPath(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string
	}{
		{
			name: "unknown event in the second document",
			data: strings.Replace(minimal, "name: memcached", "name: other", 1) + "---\n" +
				strings.Replace(minimal, "events: [create]", "events: [create]\n    - id: resize\n      events: [updated]", 1),
			want: []string{`operators.yaml:29: document 2 (memcached): /spec/callbacks/1/events/0: value must be one of "create", "update", "delete", "resume", "timer", "sync"`},
		},
		{
			name: "misspelt field is an unknown field on its own line",
			data: strings.Replace(minimal, "url: http://127.0.0.1:8081", "url: http://127.0.0.1:8081\n    timout: 10s", 1),
			want: []string{`operators.yaml:11: document 1 (memcached): /spec/handler/timout: unknown field`},
		},
		{
			name: "missing required fields are each reported at their path, on the parent's line",
			data: strings.Replace(minimal, "    - id: create\n      events: [create]\n", "    - path: /x\n", 1),
			want: []string{
				`operators.yaml:12: document 1 (memcached): /spec/callbacks/0/events: required field is missing`,
				`operators.yaml:12: document 1 (memcached): /spec/callbacks/0/id: required field is missing`,
			},
		},
		{
			name: "schema and semantic errors are reported together",
			data: strings.Replace(minimal, "events: [create]", "events: [create]\n      interval: 30s\n      retry: {jitter: 2}", 1),
			want: []string{
				`operators.yaml:14: document 1 (memcached): /spec/callbacks/0/interval: only timer callbacks take interval`,
				`operators.yaml:15: document 1 (memcached): /spec/callbacks/0/retry/jitter: must be <= 1 but found 2`,
			},
		},
		{
			name: "url and service together",
			data: strings.Replace(minimal, "url: http://127.0.0.1:8081", "url: http://127.0.0.1:8081\n    service: {namespace: a, name: b}", 1),
			want: []string{`operators.yaml:9: document 1 (memcached): /spec/handler: set only one of url, service`},
		},
		{
			name: "a bad duration says what a duration looks like",
			data: strings.Replace(minimal, "url: http://127.0.0.1:8081", "url: http://127.0.0.1:8081\n    timeout: 1d", 1),
			want: []string{`operators.yaml:11: document 1 (memcached): /spec/handler/timeout: "1d" is not a Go duration such as 500ms, 30s or 1h30m`},
		},
		{
			name: "wrong apiVersion and kind of the document",
			data: strings.Replace(strings.Replace(minimal, "v1alpha1\nkind: WebhookOperator", "v1\nkind: Operator", 1), "opgate.dev/v1alpha1", "opgate.dev/v1", 1),
			want: []string{
				`operators.yaml:1: document 1 (memcached): /apiVersion: value must be "opgate.dev/v1alpha1"`,
				`operators.yaml:2: document 1 (memcached): /kind: value must be "WebhookOperator"`,
			},
		},
		{
			name: "invalid YAML names the file and line",
			data: minimal + "---\n" + "apiVersion: [\n",
			want: []string{`operators.yaml:15: document 2: invalid YAML: did not find expected node content`},
		},
		{
			name: "a key defined twice is refused with both lines",
			data: strings.Replace(minimal, "kind: Memcached", "kind: Memcached\n    kind: Other", 1),
			want: []string{`operators.yaml:9: document 1: invalid YAML: mapping key "kind" already defined at line 8`},
		},
		{
			name: "a document of another kind gets the schema's errors only",
			data: "# a ConfigMap by mistake\ndata: {a: b}\n",
			want: []string{
				`operators.yaml:2: document 1: /apiVersion: required field is missing`,
				`operators.yaml:2: document 1: /data: unknown field`,
				`operators.yaml:2: document 1: /kind: required field is missing`,
				`operators.yaml:2: document 1: /metadata: required field is missing`,
				`operators.yaml:2: document 1: /spec: required field is missing`,
			},
		},
		{
			name: "a bare on key is what kubectl makes of it",
			data: strings.Replace(minimal, "events: [create]", "on: [create]", 1),
			want: []string{"operators.yaml:13: document 1 (memcached): /spec/callbacks/0/true: `true`: kubectl reads a bare YAML 1.1 boolean key (on, yes, y, ...) as true; if it is `on`, that field was renamed to `events`"},
		},
		{
			name: "a document separator followed by content is refused, as kubectl refuses it",
			data: minimal + "--- {a: b}\n" + strings.Replace(minimal, "name: memcached", "name: other", 1),
			want: []string{`operators.yaml:14: document 2: invalid YAML: "--- {a: b}": a document separator may be followed only by a comment (kubectl refuses it too)`},
		},
		{
			name: "documents after invalid YAML are still checked",
			data: minimal + "---\napiVersion: [\n---\n" + strings.Replace(minimal, "events: [create]", "events: []", 1),
			want: []string{
				`operators.yaml:15: document 2: invalid YAML: did not find expected node content`,
				`operators.yaml:29: document 3 (memcached): /spec/callbacks/0/events: minimum 1 items required, but found 0 items`,
			},
		},
		{
			name: "two operators with one name in one file",
			data: minimal + "---\n" + minimal,
			want: []string{`operators.yaml:18: document 2 (memcached): /metadata/name: operator "memcached" is already defined in document 1`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, err := Parse([]byte(tt.data), "operators.yaml")
			if ops != nil {
				t.Errorf("Parse() returned %d operators along with errors; want none", len(ops))
			}
			if got := errorLines(err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse() errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Errorf("Parse() error is %T, want an ErrorList", err)
			}
		})
	}
}

func TestParseAcceptsYAMLStreamsAndJSON(t *testing.T) {
	other := strings.Replace(minimal, "name: memcached", "name: other", 1)
	asJSON := `{"apiVersion": "opgate.dev/v1alpha1", "kind": "WebhookOperator", "metadata": {"name": "j"},
	  "spec": {"watch": {"apiVersion": "v1", "kind": "ConfigMap"}, "handler": {"url": "https://h.example"},
	           "callbacks": [{"id": "s", "events": ["sync"]}]}}`
	tests := []struct {
		name      string
		data      string
		wantNames []string
	}{
		{"one document", minimal, []string{"memcached"}},
		{"leading separator and empty documents are skipped", "---\n" + minimal + "---\n---\n# only a comment\n---\n" + other, []string{"memcached", "other"}},
		{"JSON", asJSON, []string{"j"}},
		{"nothing at all", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, err := Parse([]byte(tt.data), "in.yaml")
			if err != nil {
				t.Fatalf("Parse() error: %v", err)
			}
			var names []string
			for _, op := range ops {
				names = append(names, op.Name)
			}
			if !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("names = %v, want %v", names, tt.wantNames)
			}
		})
	}
}

func TestParseDefaultsTheOperators(t *testing.T) {
	ops, err := Parse([]byte(minimal), "in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := ops[0].Spec.Handler.Timeout.Or(0); got != DefaultHandlerTimeout {
		t.Errorf("handler timeout = %v, want the default %v", got, DefaultHandlerTimeout)
	}
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", minimal)
	b := writeFile(t, dir, "b.yaml", strings.Replace(minimal, "kind: Memcached", "kind: Other", 1))
	c := writeFile(t, dir, "c.yml", strings.Replace(minimal, "name: memcached", "name: c", 1))
	bad := writeFile(t, dir, "bad.yaml", strings.Replace(minimal, "events: [create]", "events: []", 1))
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, sub, "x.json", `{"apiVersion": "opgate.dev/v1alpha1", "kind": "WebhookOperator", "metadata": {"name": "x"},
	  "spec": {"watch": {"apiVersion": "v1", "kind": "Secret"}, "handler": {"url": "http://h"}, "callbacks": [{"id": "s", "events": ["sync"]}]}}`)
	writeFile(t, sub, "notes.txt", "not a manifest")
	if err := os.Mkdir(filepath.Join(sub, "deeper"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sub, "deeper"), "y.yaml", "not: [a manifest")
	if err := os.Mkdir(filepath.Join(sub, "deeper", "none"), 0o700); err != nil {
		t.Fatal(err)
	}
	empty := writeFile(t, dir, "empty.yaml", "# nothing yet\n---\n")
	tests := []struct {
		name      string
		paths     []string
		wantNames []string
		wantErrs  []string
	}{
		{"several files", []string{a, c}, []string{"memcached", "c"}, nil},
		{"a name defined in two files is refused", []string{a, b}, nil, []string{
			b + `:4: document 1 (memcached): /metadata/name: operator "memcached" is already defined in ` + a + ` (document 1)`,
		}},
		{"errors of every file are reported", []string{bad, filepath.Join(dir, "missing.yaml")}, nil, []string{
			bad + `:13: document 1 (memcached): /spec/callbacks/0/events: minimum 1 items required, but found 0 items`,
			filepath.Join(dir, "missing.yaml") + ": read: open " + filepath.Join(dir, "missing.yaml") + ": no such file or directory",
		}},
		{"a directory stands for the manifests directly in it", []string{sub, c}, []string{"x", "c"}, nil},
		{"a file without operators is refused", []string{a, empty}, nil, []string{empty + ": no WebhookOperator documents"}},
		{"a directory without manifests is refused", []string{filepath.Join(sub, "deeper", "none")}, nil, []string{
			filepath.Join(sub, "deeper", "none") + ": no .yaml, .yml or .json files"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, err := LoadFiles(tt.paths...)
			var names []string
			for _, op := range ops {
				names = append(names, op.Name)
			}
			if tt.wantErrs != nil {
				names = tt.wantNames // nothing is returned along with errors
			}
			if !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("names = %v, want %v", names, tt.wantNames)
			}
			if got := errorLines(err); !reflect.DeepEqual(got, tt.wantErrs) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantErrs, "\n"))
			}
		})
	}
}

func TestDecodeObjectChecksLikeParseAndLeavesTheInputAlone(t *testing.T) {
	var obj map[string]any
	if err := json.Unmarshal([]byte(`{"apiVersion": "opgate.dev/v1alpha1", "kind": "WebhookOperator",
	  "metadata": {"name": "m", "uid": "1234", "resourceVersion": "7"},
	  "spec": {"watch": {"apiVersion": "v1", "kind": "ConfigMap"},
	           "callbacks": [{"id": "s", "events": ["sync"], "interval": "1m"}]},
	  "status": {"observedGeneration": 2}}`), &obj); err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(obj)
	err := ValidateObject(obj)
	want := []string{
		"m: /spec/callbacks/0/interval: only timer callbacks take interval",
		"m: /spec/handler: set url or service, here or on every callback; callbacks[0] (s) have none",
	}
	if got := errorLines(err); !reflect.DeepEqual(got, want) {
		t.Errorf("ValidateObject() errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	after, _ := json.Marshal(obj)
	if string(before) != string(after) {
		t.Errorf("ValidateObject modified its input:\n%s\n%s", before, after)
	}
}

// kubectlReads reads a one-document file as `kubectl apply -f` does
// (sigs.k8s.io/yaml, YAML 1.1) and checks it as the gateway checks the
// cluster object that results.
func kubectlReads(t *testing.T, doc string) (*WebhookOperator, error) {
	t.Helper()
	var obj map[string]any
	if err := sigsyaml.Unmarshal([]byte(doc), &obj); err != nil {
		return nil, err
	}
	return DecodeObject(obj)
}

// A file means what `kubectl apply -f` makes of the same document: a
// date-like value stays the text written (yaml.v3 alone would make it a
// timestamp and rewrite it), and a bare YAML 1.1 boolean in a string field
// is a boolean, refused by both, not a string accepted by one only.
func TestAFileMeansWhatKubectlMakesOfIt(t *testing.T) {
	when := func(s string) string {
		return strings.Replace(minimal, "events: [create]", "events: [update]\n      when:\n"+s, 1)
	}
	tests := []struct {
		name    string
		data    string
		check   func(*WebhookOperator) string // the value of the accepted operator…
		want    string                        // …which must be as written
		wantErr []string                      // what Parse says when kubectl's reading is refused
	}{
		{
			name: "a date-like annotation value is kept as written",
			data: when("        annotations:\n          release: 2024-01-01"),
			check: func(op *WebhookOperator) string {
				return op.Spec.Callbacks[0].When.Annotations["release"]
			},
			want: "2024-01-01",
		},
		{
			name: "a date-like label selector value is kept as written",
			data: strings.Replace(minimal, "kind: Memcached", "kind: Memcached\n    labelSelector:\n      matchLabels:\n        release: 2024-01-01", 1),
			check: func(op *WebhookOperator) string {
				return op.Spec.Watch.LabelSelector.MatchLabels["release"]
			},
			want: "2024-01-01",
		},
		{
			name: "a date-time annotation value is kept as written",
			data: when("        annotations:\n          release: 2024-01-01 10:00:00"),
			check: func(op *WebhookOperator) string {
				return op.Spec.Callbacks[0].When.Annotations["release"]
			},
			want: "2024-01-01 10:00:00",
		},
		{
			name:    "a bare yes is a boolean",
			data:    when("        annotations:\n          release: yes"),
			wantErr: []string{`operators.yaml:16: document 1 (memcached): /spec/callbacks/0/when/annotations/release: expected string, but got boolean`},
		},
		{
			name:    "a bare off is a boolean",
			data:    when("        labels:\n          tier: off"),
			wantErr: []string{`operators.yaml:16: document 1 (memcached): /spec/callbacks/0/when/labels/tier: expected string, but got boolean`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, err := Parse([]byte(tt.data), "operators.yaml")
			cluster, clusterErr := kubectlReads(t, tt.data)
			if (err == nil) != (clusterErr == nil) {
				t.Fatalf("the file gives error %v; kubectl's reading of it gives error %v", err, clusterErr)
			}
			if tt.wantErr != nil {
				if got := errorLines(err); !reflect.DeepEqual(got, tt.wantErr) {
					t.Errorf("Parse() errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantErr, "\n"))
				}
				return
			}
			if len(ops) != 1 || !reflect.DeepEqual(ops[0], cluster) {
				file, _ := json.Marshal(ops)
				kubectl, _ := json.Marshal(cluster)
				t.Fatalf("from the file:\n%s\nas kubectl reads it:\n%s", file, kubectl)
			}
			if got := tt.check(ops[0]); got != tt.want {
				t.Errorf("value read as %q, want it as written: %q", got, tt.want)
			}
		})
	}
}

// A YAML infinity or NaN cannot become JSON (kubectl refuses the whole
// document); the error still names the file, line, document and field.
func TestParseNamesTheFieldOfAnInfinityOrNaN(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string
	}{
		{
			name: "infinity as a duration",
			data: strings.Replace(minimal, "url: http://127.0.0.1:8081", "url: http://127.0.0.1:8081\n    timeout: .inf", 1),
			want: []string{`operators.yaml:11: document 1 (memcached): /spec/handler/timeout: .inf: JSON has no infinity or NaN, so kubectl cannot read this document either`},
		},
		{
			name: "NaN and minus infinity in the second document",
			data: minimal + "---\n" + strings.Replace(strings.Replace(minimal, "name: memcached", "name: other", 1),
				"events: [create]", "events: [create]\n      retry: {jitter: .NaN, multiplier: -.Inf}", 1),
			want: []string{
				`operators.yaml:28: document 2 (other): /spec/callbacks/0/retry/jitter: .NaN: JSON has no infinity or NaN, so kubectl cannot read this document either`,
				`operators.yaml:28: document 2 (other): /spec/callbacks/0/retry/multiplier: -.Inf: JSON has no infinity or NaN, so kubectl cannot read this document either`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := kubectlReads(t, tt.data[strings.LastIndex(tt.data, "---\n")+len("---\n"):]); err == nil {
				t.Fatal("kubectl's reading accepts it; this test assumes it does not")
			}
			_, err := Parse([]byte(tt.data), "operators.yaml")
			if got := errorLines(err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse() errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// The same file given twice (`-f operators/ -f operators/memcached.yaml`,
// or under two names) is read once, not blamed for defining its operators
// twice.
func TestLoadFilesReadsAFileGivenTwiceOnce(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "memcached.yaml", minimal)
	link := filepath.Join(t.TempDir(), "link.yaml")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		paths []string
	}{
		{"in a directory and by name", []string{dir, path}},
		{"by name twice", []string{path, path}},
		{"by two spellings", []string{path, dir + "/./memcached.yaml"}},
		{"by a symbolic link", []string{link, dir}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, err := LoadFiles(tt.paths...)
			if err != nil {
				t.Fatalf("LoadFiles(%q): %v", tt.paths, err)
			}
			if len(ops) != 1 || ops[0].Name != "memcached" {
				t.Errorf("LoadFiles(%q) = %d operators, want memcached once", tt.paths, len(ops))
			}
		})
	}
}

// A file is split into documents where kubectl splits it (apimachinery's
// YAML reader), not where yaml.v3 alone would.
func TestParseSplitsDocumentsWhereKubectlDoes(t *testing.T) {
	other := strings.Replace(minimal, "name: memcached", "name: other", 1)
	tests := []struct {
		name string
		data string
	}{
		{"separators with comments and empty documents", "# header\n---\n" + minimal + "--- # next\n---\n# only a comment\n---\n" + other},
		{"Windows line ends", strings.ReplaceAll(minimal+"---\n"+other, "\n", "\r\n")},
		{"a separator followed by content", minimal + "--- {a: b}\n" + other},
		{"a longer dash line", minimal + "----\n" + other},
		{"JSON", `{"apiVersion": "opgate.dev/v1alpha1", "kind": "WebhookOperator", "metadata": {"name": "j"},
			"spec": {"watch": {"apiVersion": "v1", "kind": "ConfigMap"}, "handler": {"url": "https://h.example"},
			"callbacks": [{"id": "s", "events": ["sync"]}]}}`},
		{"a JSON stream", jsonOperator("a") + "\n" + jsonOperator("b") + jsonOperator("c")},
		{"text after the objects of a JSON stream", jsonOperator("a") + "\n" + jsonOperator("b") + "\nnot json"},
		{"text after one JSON object", jsonOperator("a") + "\nnot json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(tt.data), 4096)
			var kubectl int
			var kubectlErr error
			for {
				var obj map[string]any
				if kubectlErr = dec.Decode(&obj); kubectlErr != nil {
					break
				}
				if obj != nil {
					kubectl++
				}
			}
			if errors.Is(kubectlErr, io.EOF) {
				kubectlErr = nil
			}
			ops, err := Parse([]byte(tt.data), "operators.yaml")
			if (err == nil) != (kubectlErr == nil) || (err == nil && len(ops) != kubectl) {
				t.Errorf("Parse: %d operators, error %v; kubectl: %d objects, error %v", len(ops), err, kubectl, kubectlErr)
			}
		})
	}
}

// jsonOperator is a valid WebhookOperator in JSON on one line.
func jsonOperator(name string) string {
	return `{"apiVersion": "opgate.dev/v1alpha1", "kind": "WebhookOperator", "metadata": {"name": "` + name + `"},` +
		` "spec": {"watch": {"apiVersion": "v1", "kind": "ConfigMap"}, "handler": {"url": "https://h.example"},` +
		` "callbacks": [{"id": "s", "events": ["sync"]}]}}`
}

func TestLoadFilesReadsEveryObjectOfAJSONStream(t *testing.T) {
	dir := t.TempDir()
	badSecond := strings.Replace(jsonOperator("b"), `"events": ["sync"]`, `"events": []`, 1)
	tests := []struct {
		name      string
		data      string
		wantNames []string
		wantErrs  []string // %s is the file
	}{
		{"objects on lines of their own", jsonOperator("a") + "\n" + jsonOperator("b") + "\n", []string{"a", "b"}, nil},
		{"objects on one line", jsonOperator("a") + jsonOperator("b"), []string{"a", "b"}, nil},
		{"indented objects", "\n  {\n\"apiVersion\": \"opgate.dev/v1alpha1\"}\n" + jsonOperator("b"), nil, []string{
			"%s:2: document 1: /kind: required field is missing",
			"%s:2: document 1: /metadata: required field is missing",
			"%s:2: document 1: /spec: required field is missing",
		}},
		{"an error in the second object names its document and line", jsonOperator("a") + "\n\n" + badSecond, nil, []string{
			"%s:3: document 2 (b): /spec/callbacks/0/events: minimum 1 items required, but found 0 items",
		}},
		{"a name given twice in the stream", jsonOperator("a") + "\n" + jsonOperator("a"), nil, []string{
			`%s:2: document 2 (a): /metadata/name: operator "a" is already defined in document 1`,
		}},
		{"a comment after the objects is read as YAML would", jsonOperator("a") + "\n" + jsonOperator("b") + "\n# the end\n", []string{"a", "b"}, nil},
		{"text after the objects is refused", jsonOperator("a") + "\n" + jsonOperator("b") + "\nnot json\n", nil, []string{
			"%s:3: document 3: invalid JSON after the object that ends on line 2: invalid character 'o' in literal null (expecting 'u'); a JSON file holds objects one after another",
		}},
		{"an unfinished object after a whole one is refused", jsonOperator("a") + "\n{\"kind\":", nil, []string{
			"%s:2: document 2: invalid JSON after the object that ends on line 1: unexpected EOF; a JSON file holds objects one after another",
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, strconv.Itoa(i)+".json", tt.data)
			ops, err := LoadFiles(path)
			var names []string
			for _, op := range ops {
				names = append(names, op.Name)
			}
			if !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("names = %v, want %v", names, tt.wantNames)
			}
			var want []string
			for _, w := range tt.wantErrs {
				want = append(want, strings.ReplaceAll(w, "%s", path))
			}
			if got := errorLines(err); !reflect.DeepEqual(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// kubectl applies each item of a List; the gateway refuses a List by name
// rather than with one schema error per field of the List.
func TestLoadFilesRefusesAListNamingIt(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, file, data string
		wantErrs         []string // %s is the file
	}{
		{"JSON", "list.json", `{"apiVersion": "v1", "kind": "List",` + "\n" + `"items": [` + jsonOperator("a") + "]}", []string{
			"%s:1: document 1: /kind: a List is not read here: give each WebhookOperator as a document of its own (YAML documents separated by ---, or JSON objects one after another)",
		}},
		{"YAML, after an operator", "list.yaml", minimal + "---\napiVersion: v1\nkind: WebhookOperatorList\nitems: []\n", []string{
			"%s:16: document 2: /kind: a WebhookOperatorList is not read here: give each WebhookOperator as a document of its own (YAML documents separated by ---, or JSON objects one after another)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, tt.file, tt.data)
			_, err := LoadFiles(path)
			var want []string
			for _, w := range tt.wantErrs {
				want = append(want, strings.ReplaceAll(w, "%s", path))
			}
			if got := errorLines(err); !reflect.DeepEqual(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
