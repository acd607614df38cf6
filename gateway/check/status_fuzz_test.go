package check

import (
	"encoding/json"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// FuzzCheckMatchesAPIServerCode feeds random statuses (current and patch,
// JSON objects) to the checker and to the one built on the API server's
// own defaulting and validation packages, for each schema of the
// differential tests, and fails when they differ in the status they would
// store, the fields they prune or the violations they report.
func FuzzCheckMatchesAPIServerCode(f *testing.F) {
	type pair struct {
		ours   *StatusChecker
		server *serverChecker
	}
	var checkers []pair
	for _, tt := range diffSchemas {
		ours, server := bothCheckers(f, crdWithSchema(f, tt.schema))
		checkers = append(checkers, pair{ours, server})
		for _, st := range tt.statuses {
			f.Add(uint8(len(checkers)-1), st[0], st[1])
		}
	}
	for _, doc := range diffCRDs {
		crd, err := readCRDString(doc)
		if err != nil {
			f.Fatal(err)
		}
		ours, server := bothCheckers(f, crd)
		checkers = append(checkers, pair{ours, server})
		f.Add(uint8(len(checkers)-1), `{"phase":"Ready","list":[{"name":"a"}]}`, `{"replicas":11,"nodez":[1]}`)
	}
	f.Fuzz(func(t *testing.T, which uint8, current, patch string) {
		c := checkers[int(which)%len(checkers)]
		cur, ok := fuzzObject(current)
		if !ok {
			return
		}
		p, ok := fuzzObject(patch)
		if !ok {
			return
		}
		assertSameCheck(t, c.ours, c.server, cur, p)
	})
}

// fuzzObject decodes doc as a handler's body is decoded; "" is no object.
// It is false when doc is not a JSON object.
func fuzzObject(doc string) (map[string]any, bool) {
	if doc == "" {
		return nil, true
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

func readCRDString(doc string) (*apiextensionsv1.CustomResourceDefinition, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	return crd, yaml.UnmarshalStrict([]byte(doc), crd)
}
