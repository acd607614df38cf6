// Package essence holds the pure pieces of what a change is: the essence of
// an object (what create and update react to), its digest, the diff of two
// essences and the old object an update request carries. The gateway and
// handler authors' tests share it, and it pulls in nothing of the API
// server's libraries (docs/contract.md, "Events and when they fire").
package essence

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opgate/opgate/internal/jsonenc"
)

// OwnPrefix marks annotations and labels that belong to opgate; they are
// never part of an essence, so the gateway's own writes trigger nothing.
const OwnPrefix = "opgate.dev/"

// ignoredAnnotations change without the user changing anything they mean.
var ignoredAnnotations = []string{
	"kubectl.kubernetes.io/last-applied-configuration",
}

// Of returns what create/update react to: the object without status and
// without server-managed metadata, keeping labels and annotations (minus
// opgate's own). Finalizers are excluded.
func Of(obj *unstructured.Unstructured) map[string]any {
	out := make(map[string]any, len(obj.Object))
	for k, v := range obj.Object {
		switch k {
		case "apiVersion", "kind", "metadata", "status":
			continue
		}
		out[k] = v
	}
	meta := map[string]any{}
	if labels := filterOwn(stringMap(obj, "labels")); len(labels) > 0 {
		meta["labels"] = labels
	}
	if annotations := filterOwn(stringMap(obj, "annotations"), ignoredAnnotations...); len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	if len(meta) > 0 {
		out["metadata"] = meta
	}
	return out
}

// stringMap reads metadata.labels or metadata.annotations in place, as
// GetLabels and GetAnnotations read them (null values as "", none at all
// when one is not a string) but without copying them first: the essence is
// taken on every pass and every watch event.
func stringMap(obj *unstructured.Unstructured, field string) map[string]any {
	raw, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "metadata", field)
	m, _ := raw.(map[string]any)
	for _, v := range m {
		if _, ok := v.(string); !ok && v != nil {
			return nil
		}
	}
	return m
}

func filterOwn(in map[string]any, ignore ...string) map[string]any {
	out := make(map[string]any, len(in))
outer:
	for k, v := range in {
		if v == nil {
			v = ""
		}
		if strings.HasPrefix(k, OwnPrefix) {
			continue
		}
		for _, ig := range ignore {
			if k == ig {
				continue outer
			}
		}
		out[k] = v
	}
	return out
}

// Digest is a stable hash of any JSON-marshalable value (encoding/json sorts
// map keys, so equal maps digest equally). jsonenc writes the same bytes
// as encoding/json without its reflection: digests kept in state
// annotations stay valid.
func Digest(v any) string {
	b, err := jsonenc.Marshal(v)
	if err != nil {
		// Values come from decoded JSON; they always marshal.
		panic("essence: digest of unmarshalable value: " + err.Error())
	}
	return DigestJSON(b)
}

// DigestJSON is the Digest of the value b is the encoding of, for a b
// written by encoding/json (or jsonenc) from it.
func DigestJSON(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// OldObject rebuilds the last handled object from its essence, with the
// identity (apiVersion, kind, name, namespace) of the current object: what
// update requests carry as "old".
func OldObject(current *unstructured.Unstructured, essence map[string]any) *unstructured.Unstructured {
	old := &unstructured.Unstructured{Object: map[string]any{}}
	for k, v := range essence {
		if k != "metadata" {
			old.Object[k] = v
		}
	}
	old.SetAPIVersion(current.GetAPIVersion())
	old.SetKind(current.GetKind())
	meta, _ := essence["metadata"].(map[string]any)
	m := map[string]any{"name": current.GetName()}
	if ns := current.GetNamespace(); ns != "" {
		m["namespace"] = ns
	}
	for _, k := range []string{"labels", "annotations"} {
		if v, ok := meta[k]; ok {
			m[k] = v
		}
	}
	old.Object["metadata"] = m
	return old
}
