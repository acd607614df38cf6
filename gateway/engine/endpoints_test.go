package engine

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/spec"
)

// A Secret created from a file (openssl rand -hex 16 > s; kubectl create
// secret generic h --from-file=key=s) holds the file's final newline. A
// handler reads the same Secret mounted as a file and drops surrounding
// whitespace, as the documented rule says: the gateway must sign with the
// key that rule gives, or every signed call is refused with 401.
func TestTheGatewaySignsWithTheKeyHandlersReadFromTheSecret(t *testing.T) {
	whsec := "whsec_" + base64.StdEncoding.EncodeToString([]byte("decoded-key"))
	tests := []struct {
		name, stored, handlerKey string
	}{
		{"a raw key stored as written", "9f86d081884c7d65", "9f86d081884c7d65"},
		{"a raw key stored from a file with its newline", "9f86d081884c7d65\n", "9f86d081884c7d65"},
		{"a raw key stored with CRLF and spaces", "  9f86d081884c7d65 \r\n", "9f86d081884c7d65"},
		{"a whsec key stored with its newline", whsec + "\n", whsec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verifier, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secret: []byte(tt.handlerKey)})
			if err != nil {
				t.Fatal(err)
			}
			mux := callbacks.NewMux(callbacks.WithVerifier(verifier))
			mux.HandleEvent(callbacks.EventCreate, func(context.Context, *callbacks.Request) (*callbacks.Response, error) {
				return callbacks.Status(map[string]any{"signed": true}), nil
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()

			ref := &spec.SecretKeyRef{Namespace: testNS, Name: "hmac", Key: "key"}
			get := func(context.Context, types.NamespacedName) (*corev1.Secret, error) {
				return secret("hmac", map[string]string{"key": tt.stored}), nil
			}
			h := spec.HandlerSpec{URL: srv.URL, Auth: &spec.AuthSpec{HMACSecretRef: ref}}
			ep, err := buildEndpoint(context.Background(), h, get, map[string]*tls.Config{})
			if err != nil {
				t.Fatalf("buildEndpoint: %v", err)
			}
			caller, err := call.New(call.Config{})
			if err != nil {
				t.Fatal(err)
			}
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c", "namespace": "demo"}}}
			req := &callbacks.Request{UID: "d1", Event: callbacks.EventCreate, Operator: "o", Callback: "c", Attempt: 1, Object: obj}
			if _, err := caller.Call(context.Background(), ep, req); err != nil {
				t.Errorf("a handler verifying with %q refuses the gateway's call: %v", tt.handlerKey, err)
			}
		})
	}
}
