package main

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// callback resize has when.fields [spec.size]; an update that leaves
// spec.size alone is never sent by the gateway (docs/registration.md,
// when.fields: "call when the value at one of them changed"). gateway call
// sends it and reports what would be applied.
func TestCallDoesNotSendAnUpdateItsWhenFieldsFilterOut(t *testing.T) {
	h := &recordingHandler{answer: answerJSON(200, `{}`)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	r := runCall(t, "-f", "../../examples/operators/memcached.yaml", "--callback", "resize", "--url", srv.URL+"/update",
		"--object", callTestdata+"memcached.yaml", "--old", callTestdata+"memcached.yaml", "-o", "json")
	if n := len(h.received()); n != 0 || r.code != exitUsage {
		t.Errorf("exit %d, %d request(s) sent; the gateway sends none: spec.size did not change", r.code, n)
	}
}

// when.labels filters every event: an object without the label is never
// sent to the callback; the usage error names the rule.
func TestCallDoesNotSendAnEventItsWhenLabelsFilterOut(t *testing.T) {
	h := &recordingHandler{answer: answerJSON(200, `{}`)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	r := runCall(t, "-f", "testdata/call-when.yaml", "--callback", "tier-only", "--url", srv.URL+"/create",
		"--object", callTestdata+"memcached.yaml")
	if n := len(h.received()); n != 0 || r.code != exitUsage || r.err == nil || !strings.Contains(r.err.Error(), "when.labels tier: web") {
		t.Errorf("exit %d, error %v, %d request(s) sent; the gateway sends none: label tier is not web", r.code, r.err, n)
	}
}

// The gateway calls update callbacks only when the object's essence (spec,
// labels, annotations) changed: an update with old equal to the object is
// one it never sends, when.fields or not.
func TestCallDoesNotSendAnUpdateWithNothingChanged(t *testing.T) {
	h := &recordingHandler{answer: answerJSON(200, `{}`)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	r := runCall(t, "-f", "testdata/call-when.yaml", "--callback", "any-update", "--url", srv.URL+"/update",
		"--object", callTestdata+"memcached.yaml", "--old", callTestdata+"memcached.yaml")
	if n := len(h.received()); n != 0 || r.code != exitUsage || r.err == nil || !strings.Contains(r.err.Error(), "essence") {
		t.Errorf("exit %d, error %v, %d request(s) sent; the gateway sends none: nothing changed", r.code, r.err, n)
	}
}
