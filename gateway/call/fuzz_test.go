package call

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/callbacks"
)

// captureTransport answers 200 with an empty body and keeps the last
// request, so that the fuzzer builds requests without a network.
type captureTransport struct {
	header http.Header
	body   []byte
}

func (c *captureTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.header = r.Header.Clone()
	c.body, _ = io.ReadAll(r.Body)
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(nil)), Request: r}, nil
}

// FuzzBuildRequest: whatever object the API server holds, the request the
// gateway sends carries it unchanged (the handler decodes the same object),
// is signed so that the handler's verifier accepts it, and names the
// delivery in its headers.
func FuzzBuildRequest(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"cache.example.com/v1alpha1","kind":"Memcached","metadata":{"name":"example","namespace":"demo"},"spec":{"size":3}}`), "d1", []byte("hmac-secret"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"X","metadata":{"name":"a"},"spec":{"s":"<\u2028>&\u0000","n":1e308,"l":[null,true,{}]}}`), "uid", []byte("whsec_aGVsbG8="))
	f.Fuzz(func(t *testing.T, object []byte, uid string, secret []byte) {
		var obj map[string]any
		if uid == "" || len(secret) == 0 || json.Unmarshal(object, &obj) != nil || obj == nil {
			return
		}
		tr := &captureTransport{}
		c := newTestClient(t, Config{Transport: tr})
		req := &callbacks.Request{UID: uid, Event: callbacks.EventUpdate, Operator: "op", Callback: "cb", Attempt: 1,
			Object: &unstructured.Unstructured{Object: obj}}
		// Every field set, from the fuzzed object and uid.
		obj2 := &unstructured.Unstructured{Object: obj}
		full := *req
		full.APIVersion, full.Kind, full.Deadline = uid, uid, time.Unix(int64(len(object))*7919, int64(len(uid))).In(time.FixedZone(uid, len(secret)*60))
		full.Old, full.OldUnavailable = obj2, len(uid)%2 == 0
		full.Diff = []callbacks.DiffOp{{Op: callbacks.OpChange, Path: uid, Old: json.RawMessage(object), New: json.RawMessage(" null ")}}
		full.Children = map[string]map[string]*unstructured.Unstructured{uid: {uid: obj2, "gone": nil}, "empty": {}, "nil": nil}
		full.Related = map[string]map[string]*unstructured.Unstructured{uid + "<&>": {"n/" + uid: obj2}}
		for _, r := range []*callbacks.Request{req, &full} {
			if got, want := mustEncode(encodeRequest(r, nil)), mustEncode(json.Marshal(r)); !bytes.Equal(got, want) {
				t.Errorf("encodeRequest:\n got %s\nwant %s", got, want)
			}
		}
		if _, err := c.Call(context.Background(), Endpoint{URL: "http://handler.test/hook", HMACSecret: secret}, req); err != nil {
			return // refused before sending (e.g. a value JSON cannot encode)
		}
		if got := tr.header.Get(callbacks.HeaderWebhookID); got != uid {
			t.Errorf("webhook-id = %q, want the uid %q", got, uid)
		}
		var sent struct {
			Object map[string]any `json:"object"`
		}
		if err := json.Unmarshal(tr.body, &sent); err != nil {
			t.Fatalf("sent body is not JSON: %v\n%s", err, tr.body)
		}
		want := map[string]any{}
		round, _ := json.Marshal(obj)
		_ = json.Unmarshal(round, &want)
		if !reflect.DeepEqual(sent.Object, want) {
			t.Errorf("sent object %v, want %v", sent.Object, want)
		}
		v, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secret: secret, Clock: func() time.Time { return now }})
		if err != nil {
			return // a secret the handler side refuses to use
		}
		if err := v.Verify(tr.header, tr.body); err != nil {
			t.Errorf("the handler's verifier refuses the signature: %v", err)
		}
	})
}

// mustEncode is an encoding's bytes, or "error" for its error: two
// encodings must agree on both.
func mustEncode(b []byte, err error) []byte {
	if err != nil {
		return []byte("error")
	}
	return b
}
