package essence

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/opgate/opgate/callbacks"
)

func op(kind, path, oldJSON, newJSON string) callbacks.DiffOp {
	d := callbacks.DiffOp{Op: kind, Path: path}
	if oldJSON != "" {
		d.Old = json.RawMessage(oldJSON)
	}
	if newJSON != "" {
		d.New = json.RawMessage(newJSON)
	}
	return d
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name          string
		before, after map[string]any
		want          []callbacks.DiffOp
	}{
		{
			name:   "equal essences give no ops",
			before: map[string]any{"spec": map[string]any{"size": int64(3), "tags": []any{"a"}}},
			after:  map[string]any{"spec": map[string]any{"size": int64(3), "tags": []any{"a"}}},
			want:   nil,
		},
		{
			name:   "int64 and float64 of the same number are equal",
			before: map[string]any{"spec": map[string]any{"size": int64(3)}},
			after:  map[string]any{"spec": map[string]any{"size": float64(3)}},
			want:   nil,
		},
		{
			name:   "nested change is reported at its dotted path",
			before: map[string]any{"spec": map[string]any{"size": 1, "image": "memcached"}},
			after:  map[string]any{"spec": map[string]any{"size": 3, "image": "memcached"}},
			want:   []callbacks.DiffOp{op(callbacks.OpChange, "spec.size", "1", "3")},
		},
		{
			name:   "added label is an add under metadata.labels",
			before: map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "m"}}},
			after:  map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "m", "tier": "cache"}}},
			want:   []callbacks.DiffOp{op(callbacks.OpAdd, "metadata.labels.tier", "", `"cache"`)},
		},
		{
			name:   "removed field is a remove with its old value",
			before: map[string]any{"spec": map[string]any{"size": 1, "debug": true}},
			after:  map[string]any{"spec": map[string]any{"size": 1}},
			want:   []callbacks.DiffOp{op(callbacks.OpRemove, "spec.debug", "true", "")},
		},
		{
			name:   "new object is one add with the whole value",
			before: map[string]any{"spec": map[string]any{}},
			after:  map[string]any{"spec": map[string]any{}, "metadata": map[string]any{"labels": map[string]any{"a": "1", "b": "2"}}},
			want:   []callbacks.DiffOp{op(callbacks.OpAdd, "metadata", "", `{"labels":{"a":"1","b":"2"}}`)},
		},
		{
			name:   "list change is one change of the whole list",
			before: map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": 1}, 2}}},
			after:  map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": 5}, 2}}},
			want:   []callbacks.DiffOp{op(callbacks.OpChange, "spec.ports", `[{"port":1},2]`, `[{"port":5},2]`)},
		},
		{
			name:   "object replaced by a scalar is a change at its path",
			before: map[string]any{"spec": map[string]any{"size": 1}},
			after:  map[string]any{"spec": "none"},
			want:   []callbacks.DiffOp{op(callbacks.OpChange, "spec", `{"size":1}`, `"none"`)},
		},
		{
			name:   "null counts as absent",
			before: map[string]any{"spec": map[string]any{"a": nil, "b": nil, "c": 1}},
			after:  map[string]any{"spec": map[string]any{"a": 1, "c": nil}},
			want: []callbacks.DiffOp{
				op(callbacks.OpAdd, "spec.a", "", "1"),
				op(callbacks.OpRemove, "spec.c", "1", ""),
			},
		},
		{
			name:   "nil before makes every top-level key an add",
			before: nil,
			after:  map[string]any{"spec": map[string]any{"size": 1}, "metadata": map[string]any{}},
			want: []callbacks.DiffOp{
				op(callbacks.OpAdd, "metadata", "", "{}"),
				op(callbacks.OpAdd, "spec", "", `{"size":1}`),
			},
		},
		{
			name: "ops are sorted by path",
			before: map[string]any{
				"spec":     map[string]any{"z": 1, "a": 1, "m": map[string]any{"y": 1, "b": 1}},
				"metadata": map[string]any{"labels": map[string]any{"x": "1"}},
			},
			after: map[string]any{
				"spec":     map[string]any{"z": 2, "a": 2, "m": map[string]any{"y": 2, "b": 2}},
				"metadata": map[string]any{"labels": map[string]any{"x": "2"}},
			},
			want: []callbacks.DiffOp{
				op(callbacks.OpChange, "metadata.labels.x", `"1"`, `"2"`),
				op(callbacks.OpChange, "spec.a", "1", "2"),
				op(callbacks.OpChange, "spec.m.b", "1", "2"),
				op(callbacks.OpChange, "spec.m.y", "1", "2"),
				op(callbacks.OpChange, "spec.z", "1", "2"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.before, tt.after)
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff =\n%s\nwant\n%s", opsString(got), opsString(tt.want))
			}
		})
	}
}

func opsString(ops []callbacks.DiffOp) string {
	raw, _ := json.Marshal(ops)
	return string(raw)
}

func TestChanged(t *testing.T) {
	sizeChanged := []callbacks.DiffOp{op(callbacks.OpChange, "spec.size", "1", "3")}
	specReplaced := []callbacks.DiffOp{op(callbacks.OpAdd, "spec", "", `{"size":3}`)}
	tests := []struct {
		name   string
		diff   []callbacks.DiffOp
		fields []string
		want   bool
	}{
		{"exact path matches", sizeChanged, []string{"spec.size"}, true},
		{"parent field matches a change under it", sizeChanged, []string{"spec"}, true},
		{"child field matches a change that replaced its parent", specReplaced, []string{"spec.size"}, true},
		{"unrelated field does not match", sizeChanged, []string{"spec.image", "metadata.labels"}, false},
		{"any of several fields matches", sizeChanged, []string{"metadata.labels", "spec.size"}, true},
		{"segment prefix that is not a whole segment does not match", sizeChanged, []string{"spec.si", "spec.sizeLimit"}, false},
		{"sibling with a common prefix does not match", []callbacks.DiffOp{op(callbacks.OpChange, "specification", "1", "2")}, []string{"spec"}, false},
		{"no fields means any change counts", sizeChanged, nil, true},
		{"no fields and no change is no change", nil, nil, false},
		{"empty diff matches no field", nil, []string{"spec"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Changed(tt.diff, tt.fields); got != tt.want {
				t.Errorf("Changed(%v, %q) = %v, want %v", tt.diff, tt.fields, got, tt.want)
			}
		})
	}
}

func TestFieldsChanged(t *testing.T) {
	labels := func(kv ...string) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return map[string]any{"spec": map[string]any{"size": int64(1)}, "metadata": map[string]any{"labels": m}}
	}
	spec := func(v any) map[string]any { return map[string]any{"spec": v} }
	noMetadata := map[string]any{"spec": map[string]any{"size": int64(1)}}
	tests := []struct {
		name          string
		before, after map[string]any
		fields        []string
		want          bool
	}{
		{"exact path matches", spec(map[string]any{"size": int64(1)}), spec(map[string]any{"size": int64(3)}), []string{"spec.size"}, true},
		{"parent field matches a change under it", spec(map[string]any{"size": int64(1)}), spec(map[string]any{"size": int64(3)}), []string{"spec"}, true},
		{"unrelated field does not match", spec(map[string]any{"size": int64(1)}), spec(map[string]any{"size": int64(3)}), []string{"spec.image", "metadata.labels"}, false},
		{"segment prefix that is not a whole segment does not match", spec(map[string]any{"size": int64(1)}), spec(map[string]any{"size": int64(3)}), []string{"spec.si", "spec.sizeLimit"}, false},
		{"int64 and float64 of one number are no change", spec(map[string]any{"size": int64(3)}), spec(map[string]any{"size": float64(3)}), []string{"spec.size"}, false},
		{"null counts as absent", spec(map[string]any{"size": nil}), spec(map[string]any{}), []string{"spec.size"}, false},
		{"no fields means any change counts", spec(map[string]any{"size": int64(1)}), spec(map[string]any{"size": int64(3)}), nil, true},
		{"no fields and no change is no change", spec(map[string]any{"size": int64(1)}), spec(map[string]any{"size": int64(1)}), nil, false},

		{"a label names its key whole", labels("app.kubernetes.io/name", "a"), labels("app.kubernetes.io/name", "b"), []string{"metadata.labels.app.kubernetes.io/name"}, true},
		{"a label key is no prefix of a longer dotted key", labels("app.kubernetes.io/name", "a"), labels("app.kubernetes.io/name", "b"), []string{"metadata.labels.app"}, false},
		{"a dotted label key does not match a shorter key's change", labels("app", "a", "app.kubernetes.io/name", "x"), labels("app", "b", "app.kubernetes.io/name", "x"), []string{"metadata.labels.app.kubernetes.io/name"}, false},
		{"a shorter key matches its own change next to a dotted one", labels("app", "a", "app.kubernetes.io/name", "x"), labels("app", "b", "app.kubernetes.io/name", "x"), []string{"metadata.labels.app"}, true},
		{"an added dotted label matches", labels(), labels("app.kubernetes.io/name", "b"), []string{"metadata.labels.app.kubernetes.io/name"}, true},
		{"a dotted annotation names its key whole", map[string]any{"metadata": map[string]any{"annotations": map[string]any{"example.com/tier": "a"}}},
			map[string]any{"metadata": map[string]any{"annotations": map[string]any{"example.com/tier": "b"}}}, []string{"metadata.annotations.example"}, false},
		{"the labels field matches any label's change", labels("app.kubernetes.io/name", "a"), labels("app.kubernetes.io/name", "b"), []string{"metadata.labels"}, true},

		{"metadata appearing fires a field under it that changed", noMetadata, labels("tier", "cache"), []string{"metadata.labels.tier"}, true},
		{"metadata appearing does not fire a field under it that did not", noMetadata, labels("tier", "cache"), []string{"metadata.labels.owner", "metadata.annotations"}, false},
		{"metadata going does not fire a field under it that was absent", labels("tier", "cache"), noMetadata, []string{"metadata.labels.owner"}, false},
		{"metadata going fires a dotted label that went with it", labels("app.kubernetes.io/name", "a"), noMetadata, []string{"metadata.labels.app.kubernetes.io/name"}, true},
		{"a spec replaced whole fires a field that changed", spec(map[string]any{"size": int64(1)}), spec("none"), []string{"spec.size"}, true},
		{"a spec appearing does not fire a field it lacks", map[string]any{}, spec(map[string]any{"size": int64(1)}), []string{"spec.image"}, false},

		{"a dotted key in a spec map names its key whole", spec(map[string]any{"nodeSelector": map[string]any{"kubernetes.io/os": "linux"}}),
			spec(map[string]any{"nodeSelector": map[string]any{"kubernetes.io/os": "windows"}}), []string{"spec.nodeSelector.kubernetes"}, false},
		{"a dotted key in a spec map matches its whole path", spec(map[string]any{"nodeSelector": map[string]any{"kubernetes.io/os": "linux"}}),
			spec(map[string]any{"nodeSelector": map[string]any{"kubernetes.io/os": "windows"}}), []string{"spec.nodeSelector.kubernetes.io/os"}, true},
		{"a path that is both nested keys and a dotted key fires for either", spec(map[string]any{"a": map[string]any{"b": int64(1)}, "a.b": int64(1)}),
			spec(map[string]any{"a": map[string]any{"b": int64(2)}, "a.b": int64(1)}), []string{"spec.a.b"}, true},
		{"a path into a list compares the list, as the diff does", spec(map[string]any{"ports": []any{map[string]any{"port": int64(1)}}}),
			spec(map[string]any{"ports": []any{map[string]any{"port": int64(2)}}}), []string{"spec.ports.port"}, true},
		{"a path under a scalar names nothing there", spec(map[string]any{"size": int64(1)}), spec(map[string]any{"size": int64(2)}), []string{"spec.size.max"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FieldsChanged(tt.before, tt.after, tt.fields); got != tt.want {
				t.Errorf("FieldsChanged(%v, %v, %q) = %v, want %v", tt.before, tt.after, tt.fields, got, tt.want)
			}
			if got := FieldsChanged(tt.after, tt.before, tt.fields); got != tt.want {
				t.Errorf("FieldsChanged backwards = %v, want %v: a change is one whichever way it goes", got, tt.want)
			}
		})
	}
}
