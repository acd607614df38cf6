package callbacks

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeResponse: no answer a handler can send makes decoding panic,
// whatever decodes is what a typed decoding of the body gives, and it
// re-encodes to a body that decodes again (so the gateway never applies
// something the contract would refuse), which a Mux would send as it is.
func FuzzDecodeResponse(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"status":{"nodes":["a"]}}`, `{"children":[]}`,
		`{"children":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}]}`,
		`{"error":{"message":"m","permanent":true,"retryAfter":"10s"}}`, `{"requeueAfter":"1h"}`,
		`{"events":[{"type":"Warning","reason":"Bad","message":"x"}]}`, `{"finalized":false}`, `[`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := DecodeResponse(body)
		if err != nil {
			return
		}
		if len(bytes.TrimSpace(body)) > 0 {
			var typed Response
			if err := json.Unmarshal(body, &typed); err != nil || !reflect.DeepEqual(resp, &typed) {
				t.Fatalf("decoded %#v, a typed decoding gives %#v (%v)", resp, &typed, err)
			}
		}
		again, err := json.Marshal(resp)
		if err != nil {
			t.Fatalf("decoded response does not re-encode: %v", err)
		}
		if ours, err := encodeResponse(resp); err != nil || !bytes.Equal(ours, again) {
			t.Fatalf("a Mux encodes %#v as\n%s (%v)\njson.Marshal as\n%s", resp, ours, err, again)
		}
		if _, err := DecodeResponse(again); err != nil {
			t.Fatalf("re-encoded response %s is refused: %v", again, err)
		}
		if bad := checkAnswer(resp); bad != nil {
			t.Fatalf("a Mux would refuse %s, which the gateway takes: %v", again, bad)
		}
	})
}
