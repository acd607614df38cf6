package engine

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	restclientwatch "k8s.io/client-go/rest/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/opgate/opgate/gateway/jsonscan"
	"github.com/opgate/opgate/gateway/watchjson"
)

var deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

// deploymentJSON is a Deployment as the API server sends it in a watch
// event, managedFields and all.
const deploymentJSON = `{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"m00042","namespace":"bench","uid":"9f0b1c3e-1d2a-4f57-9d3e-5b7c1a2e0f42","resourceVersion":"123456","generation":2,"creationTimestamp":"2026-11-30T20:00:00Z","labels":{"app":"memcached","opgate.dev/operator":"memcached"},"annotations":{"deployment.kubernetes.io/revision":"1"},"ownerReferences":[{"apiVersion":"cache.example.com/v1","kind":"Memcached","name":"m00042","uid":"1b2c3d4e-0000-4000-8000-000000000042","controller":true,"blockOwnerDeletion":true}],"managedFields":[{"manager":"opgate","operation":"Apply","apiVersion":"apps/v1","time":"2026-11-30T20:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{}}}}]},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"memcached"}},"template":{"metadata":{"labels":{"app":"memcached"}},"spec":{"containers":[{"name":"memcached","image":"memcached:1.6","args":["-m","64"],"ports":[{"containerPort":11211,"protocol":"TCP"}],"resources":{"limits":{"cpu":"500m"}}}]}},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}},"revisionHistoryLimit":10,"progressDeadlineSeconds":600},"status":{"observedGeneration":2,"replicas":3,"conditions":[{"type":"Progressing","status":"True","lastUpdateTime":"2026-11-30T20:00:01Z","reason":"NewReplicaSetAvailable","message":"ReplicaSet \"m00042-5d4f\" has successfully progressed."}]}}`

// mapWithoutManagedFields is what the dynamic informer cached: the object
// decoded into a map, managedFields removed.
func mapWithoutManagedFields(t testing.TB, data string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(data)); err != nil {
		t.Fatal(err)
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	return u
}

func TestManagedFieldsAreCutFromTheJSONAlone(t *testing.T) {
	cases := map[string]string{
		"last member":       `{"kind":"K","metadata":{"name":"a","managedFields":[{"m":"x"}]},"spec":{}}`,
		"first member":      `{"kind":"K","metadata":{"managedFields":[{"m":"x"}],"name":"a"}}`,
		"only member":       `{"kind":"K","metadata":{"managedFields":[]}}`,
		"null":              `{"kind":"K","metadata":{"name":"a","managedFields":null,"uid":"u"}}`,
		"pretty":            "{\n  \"kind\": \"K\",\n  \"metadata\": {\n    \"name\": \"a\",\n    \"managedFields\": [\n      {\"m\": \"x\"}\n    ],\n    \"uid\": \"u\"\n  }\n}",
		"pretty first":      "{ \"metadata\" : { \"managedFields\" : [ ] , \"name\" : \"a\" } , \"kind\" : \"K\" }",
		"tricky strings":    `{"kind":"K","spec":{"s":"}\"managedFields\"{[","managedFields":[1]},"metadata":{"annotations":{"a":"\\\"}]"},"managedFields":[{"f":"\"]}"}],"name":"a"}}`,
		"metadata not last": `{"metadata":{"name":"a","managedFields":[{"m":1}]},"kind":"K","status":{"x":[1,2,{"y":null}]}}`,
		"escaped name":      `{"kind":"K","metadata":{"name":"a","managed\u0046ields":[{"m":1}]}}`,
		"a deployment":      deploymentJSON,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := jsonscan.WithoutManagedFields([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			var want, have any
			if err := json.Unmarshal([]byte(in), &want); err != nil {
				t.Fatal(err)
			}
			delete(want.(map[string]any)["metadata"].(map[string]any), "managedFields")
			if err := json.Unmarshal(got, &have); err != nil {
				t.Fatalf("cut JSON is invalid: %v\n%s", err, got)
			}
			if !reflect.DeepEqual(have, want) {
				t.Errorf("got  %s\nwant %v", got, want)
			}
		})
	}
}

// decodeStream decodes watch frames the way rest.Request.Watch does.
func decodeStream(t *testing.T, frames ...string) []watch.Event {
	t.Helper()
	codec := newRawCodec(deploymentGVK, "deployments.apps")
	info := codec.SupportedMediaTypes()[0]
	body := io.NopCloser(strings.NewReader(strings.Join(frames, "\n")))
	dec := restclientwatch.NewDecoder(streaming.NewDecoder(info.StreamSerializer.Framer.NewFrameReader(body), info.StreamSerializer.Serializer), info.Serializer)
	var out []watch.Event
	for {
		typ, obj, err := dec.Decode()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, watch.Event{Type: typ, Object: obj})
	}
}

func TestChildWatchEventsDecodeToMetadataAndTheJSONWithoutManagedFields(t *testing.T) {
	bookmark := `{"type":"BOOKMARK","object":{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"resourceVersion":"200","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}}}}`
	gone := `{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (200)","reason":"Expired","code":410}}`
	events := decodeStream(t, `{"type":"ADDED","object":`+deploymentJSON+`}`, bookmark, gone)
	if len(events) != 3 {
		t.Fatalf("got %d events, want 3", len(events))
	}

	added, ok := events[0].Object.(*rawChild)
	if !ok || events[0].Type != watch.Added {
		t.Fatalf("ADDED decoded to %s %T", events[0].Type, events[0].Object)
	}
	if added.Name != "m00042" || added.ResourceVersion != "123456" || ownerUID(added) != "1b2c3d4e-0000-4000-8000-000000000042" || added.Kind != "Deployment" {
		t.Errorf("metadata: %+v", added.ObjectMeta)
	}
	if added.ManagedFields != nil || bytes.Contains(added.raw, []byte("managedFields")) {
		t.Error("managedFields kept")
	}
	whole, err := added.whole()
	if err != nil {
		t.Fatal(err)
	}
	if want := mapWithoutManagedFields(t, deploymentJSON); !reflect.DeepEqual(whole.Object, want.Object) {
		t.Errorf("whole child differs from the map the dynamic informer cached:\n%v\n%v", whole.Object, want.Object)
	}
	if key, err := cache.MetaNamespaceKeyFunc(added); err != nil || key != "bench/m00042" {
		t.Errorf("cache key %q, %v", key, err)
	}
	if o, ok := asMetaObject(cache.DeletedFinalStateUnknown{Key: "bench/m00042", Obj: added.DeepCopyObject()}); !ok || o.GetUID() != added.UID {
		t.Error("tombstone of a raw child not unwrapped")
	}

	bm, ok := events[1].Object.(*rawChild)
	if !ok || events[1].Type != watch.Bookmark || bm.ResourceVersion != "200" || bm.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Errorf("BOOKMARK decoded to %s %#v", events[1].Type, events[1].Object)
	}

	if events[2].Type != watch.Error {
		t.Fatalf("ERROR decoded to %s", events[2].Type)
	}
	if err := apierrors.FromObject(events[2].Object); !apierrors.IsResourceExpired(err) || !resumable(err) {
		t.Errorf("ERROR event is %v (%T), want the API's 410 Expired", err, events[2].Object)
	}
}

func TestChildAnswersThatAreNoObjectDecodeToStatusOrAClearError(t *testing.T) {
	codec := newRawCodec(deploymentGVK, "deployments.apps in namespace bench")
	forbidden := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps is forbidden: User \"x\" cannot list resource","reason":"Forbidden","details":{"group":"apps","kind":"deployments"},"code":403}`
	obj, _, err := codec.Decode([]byte(forbidden), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := apierrors.FromObject(obj); !apierrors.IsForbidden(err) {
		t.Errorf("Status body decoded to %v (%T)", err, obj)
	}
	st := &metav1.Status{}
	if err := runtime.DecodeInto(codec, []byte(forbidden), st); err != nil || st.Code != 403 {
		t.Errorf("DecodeInto Status: %v, %+v", err, st)
	}

	for name, bad := range map[string]string{
		"object":      `{"kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":}`,
		"truncated":   deploymentJSON[:200],
		"event":       `{"type":"ADDED","object":{"kind":"Deployment"`,
		"list item":   `{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{},"items":[{"metadata":{"name":1}}]}`,
		"no kind":     `{"metadata":{"name":"a"}}`,
		"not an obj":  `[1,2]`,
		"event empty": `{"type":"ADDED"}`,
		"event null":  `{"type":"ADDED","object":null}`,
		"event cut":   `{"type":"ADDED","obj`,
		// The frame reader does not check the syntax: the decoding does,
		// around the object too.
		"event with a trailing comma": `{"type":"ADDED","object":` + deploymentJSON + `,}`,
		"event without a comma":       `{"type":"ADDED" "object":` + deploymentJSON + `}`,
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			if strings.Contains(bad, `"type"`) {
				// As restclientwatch does: the event, then its object.
				ev := &metav1.WatchEvent{}
				if _, _, err = codec.Decode([]byte(bad), nil, ev); err == nil {
					_, err = runtime.Decode(codec, ev.Object.Raw)
				}
			} else {
				_, _, err = codec.Decode([]byte(bad), nil, nil)
			}
			if err == nil || !strings.Contains(err.Error(), "deployments.apps in namespace bench") {
				t.Errorf("error %v does not name the kind", err)
			}
		})
	}
}

func TestChildListItemsGetTheListsKindAsTheDynamicClientGives(t *testing.T) {
	item := strings.Replace(deploymentJSON, `"kind":"Deployment","apiVersion":"apps/v1",`, "", 1)
	list := `{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{"resourceVersion":"777","continue":"abc","remainingItemCount":4},"items":[` + item + `,{}]}`
	obj, _, err := newRawCodec(deploymentGVK, "deployments.apps").Decode([]byte(list), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := obj.(*rawChildList)
	if !ok || len(l.Items) != 2 || l.ResourceVersion != "777" || l.Continue != "abc" || l.RemainingItemCount == nil || *l.RemainingItemCount != 4 {
		t.Fatalf("list decoded to %#v", obj)
	}
	var want unstructured.UnstructuredList
	if err := want.UnmarshalJSON([]byte(list)); err != nil {
		t.Fatal(err)
	}
	for i, it := range l.Items {
		got, err := it.whole()
		if err != nil {
			t.Fatal(err)
		}
		unstructured.RemoveNestedField(want.Items[i].Object, "metadata", "managedFields")
		if !reflect.DeepEqual(got.Object, want.Items[i].Object) {
			t.Errorf("item %d:\n%v\nwant %v", i, got.Object, want.Items[i].Object)
		}
	}
	if l.Items[0].Kind != "Deployment" || l.Items[0].APIVersion != "apps/v1" {
		t.Errorf("item type %+v", l.Items[0].TypeMeta)
	}
}

// BenchmarkDecodeChildWatchEvent decodes one Deployment watch event, its
// frame read from a stream, as the child informers do (raw), as the
// dynamic client's watch did (unstructured) and as watchjson does (the
// other informers), the last two then with the informers' transform
// dropping managedFields.
func BenchmarkDecodeChildWatchEvent(b *testing.B) {
	frame := `{"type":"MODIFIED","object":` + deploymentJSON + `}`
	viaClientGo := func(ns runtime.NegotiatedSerializer) func(io.ReadCloser) watch.Decoder {
		info := ns.SupportedMediaTypes()[0]
		return func(body io.ReadCloser) watch.Decoder {
			return restclientwatch.NewDecoder(streaming.NewDecoder(info.StreamSerializer.Framer.NewFrameReader(body), info.StreamSerializer.Serializer), info.Serializer)
		}
	}
	for _, tc := range []struct {
		name    string
		decoder func(io.ReadCloser) watch.Decoder
	}{
		{"raw", viaClientGo(newRawCodec(deploymentGVK, "deployments.apps"))},
		{"unstructured", viaClientGo(dynamic.ConfigFor(&rest.Config{}).NegotiatedSerializer)},
		{"watchjson", func(body io.ReadCloser) watch.Decoder { return watchjson.NewDecoder(body) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, obj, err := tc.decoder(io.NopCloser(strings.NewReader(frame))).Decode()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := dropManagedFields(obj); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
