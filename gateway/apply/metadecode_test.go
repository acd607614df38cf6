package apply

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// realisticAnswers are metadata-only answers as kube-apiserver sends
// them: a custom resource's with its state annotation and finalizer, and a
// Deployment child's with labels and an ownerReference, both with the
// managedFields the server keeps.
var realisticAnswers = []struct{ name, file string }{
	{"custom resource", "testdata/partial-custom.json"},
	{"deployment child", "testdata/partial-deployment.json"},
}

func BenchmarkDecodeMeta(b *testing.B) {
	for _, tt := range realisticAnswers {
		raw, err := os.ReadFile(tt.file)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeMeta(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// decodeMetaCases are answers decodeMeta must read exactly as the
// reflective decoder does; fast says the fast path reads them itself
// rather than leaving them to the reflective decoder.
func decodeMetaCases(t testing.TB) []struct {
	name string
	body string
	fast bool
} {
	t.Helper()
	file := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	indented := func(body string) string {
		var b bytes.Buffer
		if err := json.Indent(&b, []byte(body), "\r\n", "\t "); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	custom, deployment := file("testdata/partial-custom.json"), file("testdata/partial-deployment.json")
	return []struct {
		name string
		body string
		fast bool
	}{
		// What the API server sends.
		{"a custom resource's metadata", custom, true},
		{"a deployment's metadata with labels and an ownerReference", deployment, true},
		{"a whole custom resource from a server that does not transform", file("testdata/widget.json"), true},
		{"a whole deployment from a server that does not transform", file("testdata/deployment.json"), true},
		{"space around every token", indented(deployment), true},
		{"every field of ObjectMeta", `{"kind":"PartialObjectMetadata","metadata":{"name":"a","generateName":"a-","namespace":"n","uid":"u","resourceVersion":"1","generation":2,"creationTimestamp":"2026-12-01T19:17:02Z","deletionTimestamp":"2026-12-01T19:18:02+02:00","deletionGracePeriodSeconds":30,"labels":{"l":"v"},"annotations":{"a":"v"},"ownerReferences":[{"apiVersion":"v1","kind":"K","name":"o","uid":"ou","controller":false,"blockOwnerDeletion":true},{"apiVersion":"v1","kind":"K","name":"p","uid":"pu"}],"finalizers":["f","g"],"managedFields":[]}}`, true},
		{"a selfLink, which the server no longer sends", `{"metadata":{"name":"a","selfLink":"/apis/x/v1/a"}}`, false},
		{"empty labels, annotations, ownerReferences and finalizers are empty, not none", `{"metadata":{"labels":{},"annotations":{},"ownerReferences":[],"finalizers":[]}}`, true},
		{"an empty ownerReference", `{"metadata":{"ownerReferences":[{}]}}`, true},

		// A Status: an error, or a success without metadata of an object.
		{"a failed Status is its error", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"widgets \"w\" is conflicting","reason":"Conflict","details":{"name":"w","kind":"widgets"},"code":409}`, false},
		{"a successful Status has empty metadata", `{"kind":"Status","apiVersion":"v1","metadata":{"resourceVersion":"5"},"status":"Success","code":200}`, false},
		{"a Status spelt with escapes is a Status", `{"kind":"Stat\u0075s","status":"Failure","reason":"NotFound","code":404}`, false},
		{"a Status whose fields do not decode", `{"kind":"Status","status":"Failure","code":"409"}`, false},
		{"a kind given twice: the last is not a Status", `{"kind":"Status","kind":"Widget","metadata":{"name":"a"}}`, false},
		{"a kind given twice: the last is a Status", `{"kind":"Widget","kind":"Status","status":"Failure","code":500}`, false},

		// Not JSON, or not an object.
		{"an empty body", ``, false},
		{"only space", " \n\t", false},
		{"null", `null`, false},
		{"an empty object", `{}`, true},
		{"an array", `[]`, false},
		{"a string", `"metadata"`, false},
		{"a number", `1`, false},
		{"a truncated answer", custom[:len(custom)/2], false},
		{"a truncated answer in managedFields", custom[:len(custom)-60], false},
		{"the closing brace missing", `{"metadata":{}`, false},
		{"bytes after the object", `{"metadata":{}}x`, false},
		{"two objects", `{} {}`, false},
		{"a trailing comma in an object", `{"metadata":{"name":"a",}}`, false},
		{"a trailing comma in an array", `{"metadata":{"finalizers":["a",]}}`, false},
		{"a missing colon", `{"metadata" {}}`, false},
		{"a missing comma", `{"kind":"K" "metadata":{}}`, false},
		{"a key that is not a string", `{metadata:{}}`, false},
		{"single quotes", `{'metadata':{}}`, false},
		{"an invalid escape", `{"metadata":{"name":"a\x"}}`, false},
		{"an escaped single quote", `{"metadata":{"name":"a\'"}}`, false},
		{"a short unicode escape", `{"metadata":{"name":"\u00e"}}`, false},
		{"a control character in a string", "{\"metadata\":{\"name\":\"a\tb\"}}", false},
		{"an unterminated string", `{"metadata":{"name":"a}}`, false},
		{"invalid JSON in managedFields", `{"metadata":{"managedFields":[{"manager":01}]}}`, false},
		{"invalid JSON in the spec", `{"metadata":{"name":"a"},"spec":{"size":+1}}`, false},
		{"an invalid literal in a skipped value", `{"spec":{"on":tru},"metadata":{}}`, false},
		{"a literal run on", `{"spec":{"on":truex},"metadata":{}}`, false},
		{"a number without digits after its point", `{"spec":{"n":1.},"metadata":{}}`, false},
		{"a number without digits in its exponent", `{"spec":{"n":1e+},"metadata":{}}`, false},
		{"a lone minus", `{"spec":{"n":-},"metadata":{}}`, false},
		{"a byte order mark", "\ufeff{}", false},

		// Keys with escapes, or given twice.
		{"a field name spelt with escapes", `{"metadata":{"n\u0061me":"a"}}`, false},
		{"metadata spelt with escapes", `{"met\u0061data":{"name":"a"}}`, false},
		{"managedFields spelt with escapes", `{"metadata":{"managed\u0046ields":[{}],"name":"a"}}`, false},
		{"an unknown key with escapes", `{"sp\u0065c":{},"metadata":{"name":"a"}}`, false},
		{"an unknown key outside ASCII", `{"metadata":{"nämé":"a","name":"b"}}`, false},
		{"a label key with escapes", `{"metadata":{"labels":{"a\u0062\/c":"d"}}}`, true},
		{"a name given twice: the last", `{"metadata":{"name":"a","name":"b"}}`, false},
		{"labels given twice: merged", `{"metadata":{"labels":{"a":"1","b":"1"},"labels":{"b":"2"}}}`, false},
		{"metadata given twice: merged", `{"metadata":{"name":"a","labels":{"a":"1"}},"metadata":{"namespace":"n","labels":{"b":"2"}}}`, false},
		{"ownerReferences given twice: merged element by element", `{"metadata":{"ownerReferences":[{"name":"a","uid":"u"},{"name":"b"}],"ownerReferences":[{"name":"c"}]}}`, false},
		{"finalizers given twice", `{"metadata":{"finalizers":["a","b"],"finalizers":["c"]}}`, false},
		{"a field of an ownerReference given twice", `{"metadata":{"ownerReferences":[{"controller":true,"controller":false}]}}`, false},
		{"a label key given twice: the last value", `{"metadata":{"labels":{"a":"1","a":"2","\u0061":"3"}}}`, true},
		{"an unknown key given twice", `{"spec":1,"spec":{},"metadata":{"x":1,"x":[]}}`, true},
		{"managedFields given twice", `{"metadata":{"managedFields":[],"name":"a","managedFields":[{"manager":"m"}]}}`, true},

		// Nulls.
		{"metadata null", `{"kind":"K","metadata":null}`, false},
		{"kind null", `{"kind":null,"metadata":{"name":"a"}}`, false},
		{"name null", `{"metadata":{"name":null}}`, false},
		{"generation null", `{"metadata":{"generation":null}}`, false},
		{"creationTimestamp null", `{"metadata":{"creationTimestamp":null}}`, false},
		{"deletionTimestamp null", `{"metadata":{"deletionTimestamp":null}}`, false},
		{"deletionGracePeriodSeconds null", `{"metadata":{"deletionGracePeriodSeconds":null}}`, false},
		{"labels null", `{"metadata":{"labels":null}}`, false},
		{"a label value null", `{"metadata":{"labels":{"a":null}}}`, false},
		{"finalizers null", `{"metadata":{"finalizers":null}}`, false},
		{"a finalizer null", `{"metadata":{"finalizers":["a",null]}}`, false},
		{"ownerReferences null", `{"metadata":{"ownerReferences":null}}`, false},
		{"an ownerReference null", `{"metadata":{"ownerReferences":[null]}}`, false},
		{"controller null", `{"metadata":{"ownerReferences":[{"controller":null}]}}`, false},
		{"managedFields null", `{"metadata":{"managedFields":null,"name":"a"}}`, true},
		{"an unknown field null", `{"status":null,"metadata":{"clusterName":null}}`, true},

		// Values of the wrong type.
		{"kind a number", `{"kind":1,"metadata":{}}`, false},
		{"metadata an array", `{"metadata":[]}`, false},
		{"metadata a string", `{"metadata":"m"}`, false},
		{"name a number", `{"metadata":{"name":1}}`, false},
		{"uid true", `{"metadata":{"uid":true}}`, false},
		{"generation a string", `{"metadata":{"generation":"1"}}`, false},
		{"creationTimestamp a number", `{"metadata":{"creationTimestamp":0}}`, false},
		{"labels an array", `{"metadata":{"labels":["a"]}}`, false},
		{"a label value a number", `{"metadata":{"labels":{"a":1}}}`, false},
		{"finalizers a string", `{"metadata":{"finalizers":"a"}}`, false},
		{"a finalizer an object", `{"metadata":{"finalizers":[{}]}}`, false},
		{"ownerReferences an object", `{"metadata":{"ownerReferences":{}}}`, false},
		{"an ownerReference a string", `{"metadata":{"ownerReferences":["o"]}}`, false},
		{"controller a string", `{"metadata":{"ownerReferences":[{"controller":"true"}]}}`, false},
		{"deletionGracePeriodSeconds a fraction", `{"metadata":{"deletionGracePeriodSeconds":1.5}}`, false},

		// Numbers.
		{"generation 0", `{"metadata":{"generation":0}}`, true},
		{"generation -0", `{"metadata":{"generation":-0}}`, true},
		{"generation negative", `{"metadata":{"generation":-7}}`, true},
		{"generation of 18 digits", `{"metadata":{"generation":123456789012345678}}`, true},
		{"generation the largest int64", `{"metadata":{"generation":9223372036854775807}}`, false},
		{"generation the smallest int64", `{"metadata":{"generation":-9223372036854775808}}`, false},
		{"generation past int64", `{"metadata":{"generation":9223372036854775808}}`, false},
		{"generation huge", `{"metadata":{"generation":123456789012345678901234567890}}`, false},
		{"generation 1e3", `{"metadata":{"generation":1e3}}`, false},
		{"generation 1E+3", `{"metadata":{"generation":1E+3}}`, false},
		{"generation 1.0", `{"metadata":{"generation":1.0}}`, false},
		{"generation 01", `{"metadata":{"generation":01}}`, false},
		{"generation +1", `{"metadata":{"generation":+1}}`, false},
		{"generation .5", `{"metadata":{"generation":.5}}`, false},
		{"a skipped number too large for a float", `{"spec":{"n":1e400,"m":-0.0e-0},"metadata":{"generation":1}}`, true},

		// Strings outside ASCII.
		{"a name in UTF-8", `{"metadata":{"name":"größe-ü-日本"}}`, true},
		{"an annotation with escapes", `{"metadata":{"annotations":{"a":"\"q\" \\ \/ \b\f\n\r\t \u00fc \u2028 \u003c\u0026 \u0000"}}}`, true},
		{"an escaped surrogate pair", `{"metadata":{"annotations":{"a":"\ud83d\ude00"}}}`, false},
		{"a lone escaped surrogate", `{"metadata":{"annotations":{"a":"x\ud800y"}}}`, false},
		{"a name not UTF-8", "{\"metadata\":{\"name\":\"a\xffb\"}}", false},
		{"a label key not UTF-8", "{\"metadata\":{\"labels\":{\"\xc3\":\"v\"}}}", false},
		{"a skipped string not UTF-8", "{\"spec\":\"\xff\",\"metadata\":{\"name\":\"a\"}}", true},

		// Timestamps.
		{"a timestamp with an offset", `{"metadata":{"creationTimestamp":"2026-12-01T19:17:02-07:30"}}`, true},
		{"a timestamp with fractional seconds", `{"metadata":{"creationTimestamp":"2026-12-01T19:17:02.123456789Z"}}`, true},
		{"a timestamp with escapes", `{"metadata":{"creationTimestamp":"2026\u002d12-01T19:17:02Z"}}`, true},
		{"a timestamp out of range", `{"metadata":{"creationTimestamp":"2026-13-01T19:17:02Z"}}`, false},
		{"a timestamp empty", `{"metadata":{"creationTimestamp":""}}`, false},
		{"a timestamp without zone", `{"metadata":{"deletionTimestamp":"2026-12-01T19:17:02"}}`, false},

		// Other fields, and managedFields where they are not expected.
		{"no metadata", `{"kind":"Widget","apiVersion":"v1"}`, true},
		{"keys in another case are other keys", `{"Metadata":{"name":"a"},"metadata":{"Name":"b","NAME":"c"},"Kind":"Status"}`, true},
		{"Go's names of the fields are other keys", `{"Metadata":{},"metadata":{"ObjectMeta":{"name":"a"},"ManagedFields":1,"UID":"u"}}`, true},
		{"unknown fields everywhere", `{"x":[1,"2",{"3":[true,false,null]}],"metadata":{"clusterName":"c","y":{"z":[]},"ownerReferences":[{"w":1,"name":"o"}]}}`, true},
		{"managedFields at the top", `{"managedFields":[{"manager":"m"}],"metadata":{"name":"a"}}`, true},
		{"managedFields in the spec", `{"metadata":{"name":"a"},"spec":{"managedFields":"x"}}`, true},
		{"managedFields of another type", `{"metadata":{"managedFields":{"manager":"m"},"name":"a"}}`, true},
		{"managedFields a label", `{"metadata":{"labels":{"managedFields":"x"}}}`, true},
		{"managedFields in an ownerReference", `{"metadata":{"ownerReferences":[{"managedFields":[],"name":"o"}]}}`, true},
		{"a skipped value nested past what the fast path reads", `{"spec":` + strings.Repeat("[", 1500) + strings.Repeat("]", 1500) + `,"metadata":{"name":"a"}}`, false},
		{"a skipped value nested past what decoders accept", `{"spec":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `,"metadata":{"name":"a"}}`, false},
	}
}

// matchesReflectiveDecoding checks decodeMeta against the reflective
// decoder: the same metadata, timestamps included, and an error where it
// errs. It returns whether the fast path read raw itself.
func matchesReflectiveDecoding(t *testing.T, raw []byte) (fast bool) {
	t.Helper()
	want, werr := decodeMetaReflect(raw)
	got, gerr := decodeMeta(raw)
	switch {
	case (gerr == nil) != (werr == nil):
		t.Fatalf("error %v, the reflective decoder's %v", gerr, werr)
	case gerr != nil && (gerr.Error() != werr.Error() || !reflect.DeepEqual(gerr, werr)):
		t.Errorf("error %#v, the reflective decoder's %#v", gerr, werr)
	case !reflect.DeepEqual(got, want):
		t.Errorf("metadata\n%#v\nthe reflective decoder's\n%#v", got, want)
	}
	_, fast = decodeMetaFast(raw)
	return fast
}

func TestDecodeMetaMatchesReflectiveDecoding(t *testing.T) {
	for _, tt := range decodeMetaCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			if fast := matchesReflectiveDecoding(t, []byte(tt.body)); fast != tt.fast {
				t.Errorf("read by the fast path: %v, want %v", fast, tt.fast)
			}
		})
	}
}

func FuzzDecodeMetaMatchesReflectiveDecoding(f *testing.F) {
	for _, tt := range decodeMetaCases(f) {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		matchesReflectiveDecoding(t, raw)
	})
}

// TestFastPathReadsEveryFieldOfObjectMeta fills every field of ObjectMeta
// and OwnerReference that a metadata-only answer carries and has the fast
// path read them itself: a field a later apimachinery adds would be
// skipped as unknown by the hand-written list, and the result would lack
// it where the reflective decoder fills it.
func TestFastPathReadsEveryFieldOfObjectMeta(t *testing.T) {
	var want metav1.ObjectMeta
	fillEvery(t, reflect.ValueOf(&want).Elem(), "ObjectMeta")
	// Not kept, or left to the reflective decoder on purpose.
	want.ManagedFields = nil
	//lint:ignore SA1019 the fast path leaves selfLink to the reflective decoder: clear it
	want.SelfLink = ""
	meta, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	raw := `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":` + string(meta) + `}`
	got, ok := decodeMetaFast([]byte(raw))
	if !ok {
		t.Fatalf("the fast path declined a complete answer:\n%s", raw)
	}
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("fast path read\n%#v\nwant\n%#v\nfrom %s", got, &want, raw)
	}
}

// fillEvery sets every field reachable from v to a value that is not its
// zero and survives a JSON round trip.
func fillEvery(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	if v.Type() == reflect.TypeOf(metav1.Time{}) {
		v.Set(reflect.ValueOf(metav1.NewTime(time.Date(2026, 12, 1, 19, 17, 10, 0, time.UTC).Local())))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("v-" + path)
	case reflect.Int64, reflect.Int32, reflect.Int:
		v.SetInt(7)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillEvery(t, v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillEvery(t, v.Index(0), path+"[0]")
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String || v.Type().Elem().Kind() != reflect.String {
			t.Fatalf("%s: a map of %s, which this filler does not know", path, v.Type())
		}
		v.Set(reflect.ValueOf(map[string]string{"k-" + path: "v-" + path}).Convert(v.Type()))
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Name == "ManagedFields" {
				continue // dropped by the decoder, filled by the caller if at all
			}
			fillEvery(t, v.Field(i), path+"."+f.Name)
		}
	default:
		t.Fatalf("%s: a %s, which this filler does not know", path, v.Kind())
	}
}
