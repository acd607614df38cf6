package main

import (
	"net/http/httptest"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/check"
)

// docs/contract.md: "A built-in kind without the status subresource
// ... (a ConfigMap: no configmaps/status) keeps no status: a non-empty
// status for it is a permanent InvalidStatus error." gateway call reports
// the patch as applied.
func TestCallRefusesAStatusForABuiltInKindWithoutStatusSubresource(t *testing.T) {
	h := &recordingHandler{answer: answerJSON(200, `{"status":{"seen":true}}`)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	r := runCall(t, "--url", srv.URL+"/sync", "--event", "sync", "--object", callTestdata+"configmap.yaml", "-o", "json")
	if r.rep == nil || r.rep.Outcome.Result != resultPermanent || r.rep.Outcome.Reason != check.ReasonInvalidStatus {
		t.Errorf("exit %d, %s; the gateway refuses it (InvalidStatus, permanent)", r.code, r.stdout)
	}
}

// An answer with an error still has its status applied, except for a kind
// that keeps none: the report says the status would not be applied.
func TestCallSaysAnErrorAnswersStatusForAConfigMapIsNotApplied(t *testing.T) {
	h := &recordingHandler{answer: answerJSON(200, `{"status":{"seen":true},"error":{"message":"db down"}}`)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	r := runCall(t, "--url", srv.URL+"/sync", "--event", "sync", "--object", callTestdata+"configmap.yaml", "-o", "json")
	if r.rep == nil || r.rep.Status != nil || r.rep.StatusRefused == "" {
		t.Errorf("exit %d, %s; the gateway applies no status to a ConfigMap", r.code, r.stdout)
	}
}

// gateway call knows a built-in kind keeps no status when client-go's Go
// type has no status field; the engine asks discovery for <resource>/status.
// For every kind the API server serves and watches they must agree, or the
// call refuses a status the gateway writes. The one way they may differ:
// client-go newer than the server, whose type has a status the server does
// not serve yet (the call then reports applied where the gateway refuses).
func TestOfflineStatusSubresourcesAgreeWithTheAPIServer(t *testing.T) {
	newerInClientGo := []schema.GroupKind{{Group: "storage.k8s.io", Kind: "CSINode"}}
	servedBuiltins(t, func(gvk schema.GroupVersionKind, _ bool, subresources map[string]bool, verbs []string) {
		if !slices.Contains(verbs, "watch") {
			return // not a kind the gateway can watch
		}
		offline, known := builtinKeepsStatus(gvk)
		switch served := subresources["status"]; {
		case !known:
			t.Errorf("%s: client-go's scheme does not know it", gvk)
		case offline == served:
		case offline && slices.Contains(newerInClientGo, gvk.GroupKind()):
		default:
			t.Errorf("%s: offline keeps status %t, the API server's discovery lists %s/status %t", gvk, offline, gvk.Kind, served)
		}
	})
}
