package jsondec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	kjson "sigs.k8s.io/json"
)

// deployment is a Deployment as the API server serves it, managedFields
// and escaped keys included.
const deployment = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"mc-00001","namespace":"gateway-fast-backlog","uid":"0b7e0f3c-6a43-4d8e-9a57-2b1a0b6f1e11","resourceVersion":"123456","generation":2,"creationTimestamp":"2026-11-30T18:05:06Z","labels":{"app":"memcached","bench":"mc-00001","opgate.dev/operator":"bench"},"annotations":{"opgate.dev/state.bench":"{\"u\":\"5c060e3e\",\"h\":\"f1ee10fb4db5b4c045954e5f\",\"e\":\"eyJzcGVjIjp7InNpemUiOjN9fQ==\"}"},"ownerReferences":[{"apiVersion":"bench.opgate.dev/v1","kind":"Memcached","name":"mc-00001","uid":"5d3b1c2e-7f8a-4b9c-8d0e-1f2a3b4c5d6e","controller":true,"blockOwnerDeletion":true}],"managedFields":[{"manager":"opgate","operation":"Apply","apiVersion":"apps/v1","time":"2026-11-30T18:05:07Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{}},"f:ownerReferences":{"k:{\"uid\":\"5d3b1c2e\"}":{}}}}}]},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"memcached"}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"memcached"}},"spec":{"containers":[{"name":"memcached","image":"memcached:1.6","ports":[{"containerPort":11211,"protocol":"TCP"}],"resources":{}}],"terminationGracePeriodSeconds":30}},"strategy":{"rollingUpdate":{"maxSurge":"25%"}},"revisionHistoryLimit":10},"status":{"ratio":0.5,"big":12345678901234567890,"neg":-7,"exp":1e3,"conditions":[]}}`

// kubernetes decodes data as sigs.k8s.io/json does for Unstructured.
func kubernetes(data []byte) (any, error) {
	var v any
	err := kjson.UnmarshalCaseSensitivePreserveInts(data, &v)
	return v, err
}

// withNumbers decodes data as a json.Decoder with UseNumber, refusing
// anything after the value but whitespace.
func withNumbers(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the value")
	}
	return v, nil
}

// sameAsReference fails t unless Decode gives what the reference gives,
// or declines.
func sameAsReference(t *testing.T, data []byte, numbers Numbers, mustDecode bool) {
	t.Helper()
	ref := kubernetes
	if numbers == UseNumber {
		ref = withNumbers
	}
	want, wantErr := ref(data)
	got, ok := Decode(data, numbers)
	switch {
	case ok && wantErr != nil:
		t.Fatalf("decoded %q to %#v; encoding/json refuses it: %v", data, got, wantErr)
	case ok && (!reflect.DeepEqual(got, want) || fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want)):
		// %#v tells -0.0 from 0, which DeepEqual does not.
		t.Fatalf("decoded %q to\n%#v\nencoding/json gives\n%#v", data, got, want)
	case !ok && wantErr == nil && mustDecode:
		t.Fatalf("declined %q, which encoding/json decodes to %#v", data, want)
	}
}

func TestDecodeGivesWhatEncodingJSONGives(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
	}{
		{"a Deployment as served", deployment},
		{"escapes", `{"a":"\"\\\/\b\f\n\r\t\u00e9\u0041"}`},
		{"a surrogate pair", `["\ud83d\ude00"]`},
		{"a lone high surrogate", `["\ud83dx"]`},
		{"a high surrogate before a non-surrogate escape", `["\ud83d\u0041"]`},
		{"a lone low surrogate", `["\ude00"]`},
		{"two high surrogates", `["\ud83d\ud83d\ude00"]`},
		{"UTF-8", `{"ключ":"значение ✓"}`},
		{"invalid UTF-8", "[\"a\xffb\xc3\"]"},
		{"a UTF-8 surrogate", "[\"\xed\xa0\x80\"]"},
		{"invalid UTF-8 in a key", "{\"\xff\":1}"},
		{"a key given twice", `{"a":1,"a":{"b":2}}`},
		{"empty containers", `{"a":[],"b":{},"c":[[]]}`},
		{"literals", `[true,false,null]`},
		{"whitespace everywhere", " \t\n\r{ \"a\" : [ 1 , 2 ] , \"b\" : null } \n"},
		{"integers", `[0,-0,1,-1,123456789012345678,999999999999999999,9223372036854775807,-9223372036854775808]`},
		{"integers past int64", `[9223372036854775808,-9223372036854775809,12345678901234567890123]`},
		{"floats", `[0.5,-0.0,1e3,1E-3,1.5e+10,0e0,-1.25E2,1.0]`},
		{"a number past float64", `[1e400]`},
		{"a bare value", `"x"`},
		{"a bare number", `42`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, numbers := range []Numbers{PreserveInts, UseNumber} {
				sameAsReference(t, []byte(tc.data), numbers, tc.name != "a number past float64")
			}
		})
	}
}

func TestDecodeDeclinesWhatEncodingJSONRefuses(t *testing.T) {
	for _, data := range []string{
		``, ` `, `{`, `}`, `[`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1 "b":2}`,
		`[1 2]`, `{} {}`, `{}x`, `tru`, `truex`, `nul`, `01`, `-`, `-a`, `1.`, `1.e3`, `.5`,
		`1e`, `1e+`, `+1`, `0x10`, `"a`, "\"a\x01\"", `"\x"`, `"\u12"`, `"\u12g4"`, `"\'"`,
		`NaN`, `[Infinity]`, strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	} {
		for _, numbers := range []Numbers{PreserveInts, UseNumber} {
			if v, ok := Decode([]byte(data), numbers); ok {
				t.Errorf("decoded %q to %#v, which encoding/json refuses", data, v)
			}
		}
	}
}

func TestDecodeNestsAsDeepAsItsLimit(t *testing.T) {
	data := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	sameAsReference(t, []byte(data), PreserveInts, true)
}

func TestObjectDeclinesAnythingButAnObject(t *testing.T) {
	for _, data := range []string{`null`, `[]`, `"x"`, `1`, `true`} {
		if m, ok := Object([]byte(data), PreserveInts); ok {
			t.Errorf("Object(%q) = %#v, want it declined", data, m)
		}
	}
	m, ok := Object([]byte(deployment), PreserveInts)
	if !ok || m["kind"] != "Deployment" {
		t.Fatalf("Object(deployment) = %v, %v", m, ok)
	}
}

func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{deployment, `{"a":"\ud83d\ude00\u0041"}`, "[\"\xff\"]", `[1e400,-0,1.5]`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsReference(t, data, PreserveInts, false)
		sameAsReference(t, data, UseNumber, false)
	})
}

func BenchmarkDecodeDeployment(b *testing.B) {
	data := []byte(deployment)
	b.Run("jsondec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := Object(data, PreserveInts); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("sigs.k8s.io/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
