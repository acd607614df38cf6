package spec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse: no registration, YAML or JSON, makes the validator panic;
// what it accepts is valid and stable: encoded and parsed again, it gives
// the same operators (defaulting twice changes nothing). The same bytes
// as a cluster object (JSON) go through ValidateObject without panicking.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../examples/operators/*.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var obj map[string]any
		if json.Unmarshal(data, &obj) == nil && obj != nil {
			_ = ValidateObject(obj)
		}
		ops, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		for _, op := range ops {
			if err := Validate(op); err != nil {
				t.Fatalf("Parse accepted %s, which Validate refuses: %v", op.Name, err)
			}
			enc, err := json.Marshal(op)
			if err != nil {
				t.Fatalf("accepted operator %s does not encode: %v", op.Name, err)
			}
			again, err := Parse(enc, "re-encoded")
			if err != nil {
				t.Fatalf("accepted operator, re-encoded, is refused: %v\n%s", err, enc)
			}
			if len(again) != 1 || !reflect.DeepEqual(again[0], op) {
				t.Fatalf("accepted operator changes when encoded and parsed again:\n%s", enc)
			}
		}
	})
}
