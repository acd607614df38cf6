package check

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"
)

// crdWithSchema is a one-version CRD with the status subresource and the
// given openAPIV3Schema (YAML).
func crdWithSchema(t testing.TB, schema string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	props := &apiextensionsv1.JSONSchemaProps{}
	if err := yaml.UnmarshalStrict([]byte(schema), props); err != nil {
		t.Fatalf("parse schema: %v", err)
	}
	return &apiextensionsv1.CustomResourceDefinition{Spec: apiextensionsv1.CustomResourceDefinitionSpec{
		Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
			Name:         "v1",
			Schema:       &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: props},
			Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
		}},
	}}
}

// internalSchema is crd's first version's schema in the internal version.
func internalSchema(t testing.TB, crd *apiextensionsv1.CustomResourceDefinition) *apiextensions.JSONSchemaProps {
	t.Helper()
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, internal, nil); err != nil {
		t.Fatal(err)
	}
	return internal
}

// decodeStatus decodes a test status; "" is no status (nil).
func decodeStatus(t testing.TB, doc string) map[string]any {
	t.Helper()
	if doc == "" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	return m
}

// assertSameCheck runs both checkers on copies of current and patch and
// fails unless they return the same status, pruned paths and error.
func assertSameCheck(t testing.TB, ours *StatusChecker, server *serverChecker, current, patch map[string]any) {
	t.Helper()
	wantMerged, wantPruned, _, wantErr := server.Check(deepCopyAnyMap(current), deepCopyAnyMap(patch))
	merged, pruned, err := ours.Check(deepCopyAnyMap(current), deepCopyAnyMap(patch))
	if current == nil || wantErr == nil || err == nil && wantErr == nil {
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Errorf("current %v, patch %v:\nerror  %v\nserver %v", current, patch, err, wantErr)
		}
	} else {
		// An update: Check ratchets at least what the server does (it is
		// never stricter), and may let through a value the server checks
		// again; what it refuses, the server refuses too.
		for _, e := range strings.Split(strings.TrimPrefix(fmt.Sprint(err), "status refused by the CRD schema: "), "; ") {
			if err != nil && !strings.Contains(wantErr.Error(), e) {
				t.Errorf("current %v, patch %v:\nerror %q\nnot among the server's %v", current, patch, e, wantErr)
			}
		}
	}
	if current != nil && wantMerged != nil {
		// The validation itself, without ratcheting, on what was merged.
		assertSameCheck(t, ours, server, nil, wantMerged)
	}
	if !reflect.DeepEqual(merged, wantMerged) {
		t.Errorf("current %v, patch %v:\nmerged %#v\nserver %#v", current, patch, merged, wantMerged)
	}
	if !reflect.DeepEqual(pruned, wantPruned) {
		t.Errorf("current %v, patch %v:\npruned %q\nserver %q", current, patch, pruned, wantPruned)
	}
}

func deepCopyAnyMap(m map[string]any) map[string]any {
	c, _ := deepCopyAny(m).(map[string]any)
	return c
}

// Check accepts, prunes, defaults and refuses every status of the table as
// the checker built on the API server's own packages does.
func TestStatusCheckMatchesAPIServerCode(t *testing.T) {
	for _, tt := range diffSchemas {
		t.Run(tt.name, func(t *testing.T) {
			crd := crdWithSchema(t, tt.schema)
			ours, server := bothCheckers(t, crd)
			refused := 0
			for _, st := range tt.statuses {
				current, patch := decodeStatus(t, st[0]), decodeStatus(t, st[1])
				assertSameCheck(t, ours, server, current, patch)
				if _, _, err := ours.Check(current, patch); err != nil {
					refused++
				}
			}
			// Each schema's table has statuses either way, or it proves little.
			if refused == 0 || refused == len(tt.statuses) {
				t.Errorf("%d of %d statuses refused: the table must hold both", refused, len(tt.statuses))
			}
		})
	}
	for _, doc := range diffCRDs {
		crd := parseCRD(t, doc)
		ours, server := bothCheckers(t, crd)
		for _, st := range [][2]string{{``, `{"phase":"Ready","x":1}`}, {`{"a":1}`, `{"list":[{}],"a":null}`}} {
			assertSameCheck(t, ours, server, decodeStatus(t, st[0]), decodeStatus(t, st[1]))
		}
	}
}

func bothCheckers(t testing.TB, crd *apiextensionsv1.CustomResourceDefinition) (*StatusChecker, *serverChecker) {
	t.Helper()
	name := crd.Spec.Versions[0].Name
	server, err := newServerChecker(crd, name)
	if err != nil {
		t.Fatalf("server checker: %v", err)
	}
	ours, err := NewStatusChecker(crd, name)
	if err != nil {
		t.Fatalf("NewStatusChecker: %v", err)
	}
	return ours, server
}

// The kube-openapi schema the validator is built from is the server's,
// field for field, formats stripped alike.
func TestStatusSchemaConversionMatchesAPIServerCode(t *testing.T) {
	// The formats every server checks: those of compatibility version 1.0.
	strip := apiservervalidation.StripUnsupportedFormatsPostProcessorForVersion(everyServer)
	for _, tt := range diffSchemas {
		t.Run(tt.name, func(t *testing.T) {
			internal := internalSchema(t, crdWithSchema(t, tt.schema))
			want := &spec.Schema{}
			if err := apiservervalidation.ConvertJSONSchemaPropsWithPostProcess(internal, want, strip); err != nil {
				t.Fatal(err)
			}
			got, err := toOpenAPISchema(internal)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("converted schema differs:\nours   %s\nserver %s", g, w)
			}
		})
	}
}

// Every format, on every type, is kept or dropped as the server does.
func TestStatusSchemaFormatsMatchAPIServerCode(t *testing.T) {
	// The formats every server checks: those of compatibility version 1.0.
	strip := apiservervalidation.StripUnsupportedFormatsPostProcessorForVersion(everyServer)
	formats := []string{"bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac",
		"uuid", "uuid3", "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "credit-card",
		"ssn", "hexcolor", "hex-color", "rgbcolor", "byte", "password", "date", "duration",
		"datetime", "date-time", "k8s-short-name", "k8s-long-name", "k8sshortname", "int32", "int64",
		"float", "double", "url", "binary", "ObjectId", "Email", "uri-reference", "dns1123label", "nope"}
	for _, typ := range []string{"", "string", "integer", "number", "boolean", "object", "array"} {
		for _, intOrString := range []bool{false, true} {
			for _, format := range formats {
				in := &apiextensions.JSONSchemaProps{Type: typ, Format: format, XIntOrString: intOrString}
				want := &spec.Schema{}
				if err := apiservervalidation.ConvertJSONSchemaPropsWithPostProcess(in, want, strip); err != nil {
					t.Fatal(err)
				}
				got, err := toOpenAPISchema(in)
				if err != nil {
					t.Fatal(err)
				}
				if got.Format != want.Format {
					t.Errorf("type %q (int-or-string %v), format %q: ours keep %q, the server %q", typ, intOrString, format, got.Format, want.Format)
				}
			}
		}
	}
}

// The validator's violations become the field errors the server makes:
// same types, paths, values and details.
func TestStatusFieldErrorsMatchAPIServerCode(t *testing.T) {
	for _, tt := range diffSchemas {
		t.Run(tt.name, func(t *testing.T) {
			crd := crdWithSchema(t, tt.schema)
			props := internalSchema(t, crd).Properties["status"]
			server, _, err := apiservervalidation.NewSchemaValidatorForVersion(&props, everyServer)
			if err != nil {
				t.Fatal(err)
			}
			ours := newCheckerFor(t, crd).statusValidator
			for _, st := range tt.statuses {
				status := decodeStatus(t, st[1])
				if normalized, err := normalizeJSON(status); err == nil {
					status = normalized
				}
				path := field.NewPath("status")
				want := apiservervalidation.ValidateCustomResource(path, status, server)
				got := validateValue(path, status, ours.schema)
				if !reflect.DeepEqual(sortFieldErrors(got), sortFieldErrors(want)) {
					t.Errorf("status %s:\nours   %v\nserver %v", st[1], got, want)
				}
			}
		})
	}
}

func newCheckerFor(t testing.TB, crd *apiextensionsv1.CustomResourceDefinition) *StatusChecker {
	t.Helper()
	c, err := NewStatusChecker(crd, crd.Spec.Versions[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sortFieldErrors orders errors by their message: the validator walks
// maps in random order.
func sortFieldErrors(errs field.ErrorList) field.ErrorList {
	out := append(field.ErrorList(nil), errs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Error() < out[j].Error() })
	return out
}

// Defaults are pruned, applied, and nulls without one dropped, as the
// server's defaulting package does it.
func TestStatusDefaultingMatchesAPIServerCode(t *testing.T) {
	for _, tt := range diffSchemas {
		t.Run(tt.name, func(t *testing.T) {
			s, err := structuralschema.NewStructural(internalSchema(t, crdWithSchema(t, tt.schema)))
			if err != nil {
				t.Fatal(err)
			}
			want, got := s.DeepCopy(), s.DeepCopy()
			wantErr, gotErr := structuraldefaulting.PruneDefaults(want), pruneDefaults(got)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
				t.Fatalf("pruned defaults differ (errors %v, %v):\nours   %s\nserver %s", gotErr, wantErr, jsonOf(got), jsonOf(want))
			}
			for _, st := range tt.statuses {
				status, err := normalizeJSON(decodeStatus(t, st[1]))
				if err != nil {
					t.Fatal(err)
				}
				wantObj := map[string]any{"status": status}
				gotObj := runtime.DeepCopyJSON(wantObj)
				structuraldefaulting.PruneNonNullableNullsWithoutDefaults(wantObj, want)
				pruneNullsWithoutDefaults(gotObj, got)
				if !reflect.DeepEqual(gotObj, wantObj) {
					t.Errorf("status %s, nulls pruned:\nours   %v\nserver %v", st[1], gotObj, wantObj)
				}
				structuraldefaulting.Default(wantObj, want)
				applyDefaults(gotObj, got)
				if !reflect.DeepEqual(gotObj, wantObj) {
					t.Errorf("status %s, defaulted:\nours   %v\nserver %v", st[1], gotObj, wantObj)
				}
			}
		})
	}
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// A schema whose defaults the server cannot prune is refused by both, in
// the same words.
func TestNewStatusCheckerRefusesDefaultsAsAPIServerCode(t *testing.T) {
	for _, schema := range []string{
		`{type: object, default: 1, properties: {status: {type: object}}}`,
		`{type: object, default: [], properties: {status: {type: object}}}`,
	} {
		crd := crdWithSchema(t, schema)
		_, wantErr := newServerChecker(crd, crd.Spec.Versions[0].Name)
		_, err := NewStatusChecker(crd, crd.Spec.Versions[0].Name)
		if wantErr == nil || err == nil {
			t.Fatalf("schema %s: server error %v, ours %v; want both to refuse", schema, wantErr, err)
		}
		w := strings.TrimPrefix(wantErr.Error(), "prune defaults: ")
		if !strings.HasSuffix(err.Error(), w) {
			t.Errorf("schema %s: ours %q, server %q", schema, err, w)
		}
	}
}
