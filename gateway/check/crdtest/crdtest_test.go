package crdtest

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/callbacks/callbackstest"
)

const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
          status:
            type: object
            properties:
              ready: {type: boolean}
              replicas: {type: integer, minimum: 0}
`

const widget = `
	apiVersion: example.com/v1
	kind: Widget
	metadata: {name: w1, namespace: demo}
	spec: {size: 5}
	status: {ready: true}`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crd.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadCRDRefusesWhatTheAPIServerWould(t *testing.T) {
	tests := []struct {
		name    string
		crd     string
		wantErr string
	}{
		{"a valid CRD loads", widgetCRD, ""},
		{"a misspelt field fails", strings.Replace(widgetCRD, "served:", "serverd:", 1), "does not decode strictly"},
		{"a name that is not plural.group fails", strings.Replace(widgetCRD, "name: widgets.example.com", "name: widget.example.com", 1), "plural"},
		{"a schema without types fails", strings.Replace(widgetCRD, "size: {type: integer}", "size: {minimum: 1}", 1), "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readCRD(writeFile(t, tt.crd))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("readCRD: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("readCRD error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestStatusProblems(t *testing.T) {
	file := writeFile(t, widgetCRD)
	crd, err := readCRD(file)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		answer string
		want   string // "" when the status fits
	}{
		{"a status that fits passes", `{"status": {"replicas": 2}}`, ""},
		{"a field the schema lacks would be dropped", `{"status": {"replicaz": 2}}`, "status.replicaz"},
		{"a value the schema refuses fails", `{"status": {"replicas": -1}}`, "status.replicas"},
		{"a wrong type fails", `{"status": {"ready": "yes"}}`, "status.ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(tt.answer)) })
			res := callbackstest.Call(t, answer, callbackstest.NewRequest(t, callbacks.EventSync, widget))
			got := strings.Join(statusProblems(crd, file, res), "\n")
			switch {
			case tt.want == "" && got != "":
				t.Errorf("statusProblems = %s, want none", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("statusProblems = %q, want one containing %q", got, tt.want)
			}
		})
	}
}
