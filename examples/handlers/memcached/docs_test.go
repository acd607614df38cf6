package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
)

const handlersDoc = "../../../docs/handlers.md"

// curlExample matches the curl command of docs/handlers.md's "The smallest
// handler, with curl": the path it POSTs to and its body.
var curlExample = regexp.MustCompile(`(?s)curl -s http://127\.0\.0\.1:8081(/\S*) -H 'Content-Type: application/json' -d '(\{.*?\})'`)

// TestHandlersDocCurlExampleIsAnsweredWithTheDeployment sends the request
// docs/handlers.md shows, read from the page, to this handler (the one that
// listens on 127.0.0.1:8081 in the examples), as the page's curl does.
func TestHandlersDocCurlExampleIsAnsweredWithTheDeployment(t *testing.T) {
	doc, err := os.ReadFile(handlersDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := curlExample.FindSubmatch(doc)
	if m == nil {
		t.Fatalf("%s shows no `curl -s http://127.0.0.1:8081/... -d '{...}'`; update this test to follow it", handlersDoc)
	}
	path, body := string(m[1]), string(m[2])

	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	newTestRouter(t).ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		t.Fatalf("the curl example of %s: HTTP %d %s, want 200", handlersDoc, rec.Code, rec.Body)
	}
	resp, err := callbacks.DecodeResponse(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("answer to the curl example: %v", err)
	}
	if resp.Children == nil || len(*resp.Children) != 1 || (*resp.Children)[0].GetName() != "example-memcached" {
		t.Fatalf("answer to the curl example: %s, want the Deployment example-memcached", rec.Body)
	}
}

// TestHandlersDocTestingSnippet is docs/handlers.md's "Testing handlers"
// snippet, run against this handler, so that the snippet compiles against
// callbackstest as it is and passes; TestHandlersDocTestingSnippetIsThisFile
// keeps the two alike.
func TestHandlersDocTestingSnippet(t *testing.T) {
	handler := newTestRouter(t)
	newYAML := `
		apiVersion: cache.example.com/v1alpha1
		kind: Memcached
		metadata: {name: example-memcached, namespace: demo}
		spec: {size: 5}`
	oldYAML := strings.Replace(newYAML, "size: 5", "size: 3", 1)

	// As on the page, from here on (TestHandlersDocTestingSnippetIsThisFile).
	req := callbackstest.NewRequest(t, callbacks.EventUpdate, newYAML,
		callbackstest.WithCallback("resize"), callbackstest.WithOld(oldYAML))
	res := callbackstest.Call(t, handler, req, callbackstest.AtPath("/update"))
	dep := res.Child("apps/v1", "Deployment", "example-memcached") // fails the test when absent
	if n, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); n != 5 {
		t.Errorf("replicas = %d, want 5", n)
	}
}

// testingSnippet matches the Go snippet of docs/handlers.md's "Testing
// handlers".
var testingSnippet = regexp.MustCompile("(?s)## Testing handlers.*?```go\n(.*?)```")

// TestHandlersDocTestingSnippetIsThisFile checks that the snippet of
// docs/handlers.md's "Testing handlers" is, line for line, the code
// TestHandlersDocTestingSnippet runs.
func TestHandlersDocTestingSnippetIsThisFile(t *testing.T) {
	doc, err := os.ReadFile(handlersDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := testingSnippet.FindSubmatch(doc)
	if m == nil {
		t.Fatalf("%s has no Go snippet under \"Testing handlers\"; update this test to follow it", handlersDoc)
	}
	self, err := os.ReadFile("docs_test.go")
	if err != nil {
		t.Fatal(err)
	}
	snippet, code := trimmedLines(string(m[1])), strings.Join(trimmedLines(string(self)), "\n")
	if !strings.Contains(code, strings.Join(snippet, "\n")) {
		t.Errorf("the snippet of %s is not the code of TestHandlersDocTestingSnippet; make them alike:\n%s", handlersDoc, strings.Join(snippet, "\n"))
	}
}

// trimmedLines are the lines of s without their indentation, empty ones
// left out.
func trimmedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
