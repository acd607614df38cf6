package callbacks

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// nested is a response whose status nests depth levels of objects in all.
func nested(depth int) string {
	// The top-level object is one level, status and what it holds the rest.
	inner := strings.Repeat(`{"a":`, depth-2) + "{}" + strings.Repeat("}", depth-2)
	return `{"status":` + inner + `}`
}

// wide is a response whose status holds a list of n numbers.
func wide(n int) string {
	return `{"status":{"list":[0` + strings.Repeat(",0", n-1) + `]}}`
}

func TestDecodeResponseLimitsDepthAndElements(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // "" when the answer is within the limits
	}{
		{"nested to the depth limit", nested(MaxResponseDepth), ""},
		{"nested one level deeper", nested(MaxResponseDepth + 1), fmt.Sprintf("nests deeper than %d levels", MaxResponseDepth)},
		{"nested very deep", nested(100000), fmt.Sprintf("nests deeper than %d levels", MaxResponseDepth)},
		{"brackets inside strings do not count", `{"status":{"s":"` + strings.Repeat("[{", MaxResponseDepth) + `"}}`, ""},
		{"many elements within the limit", wide(MaxResponseElements - 10), ""},
		{"more elements than the limit", wide(MaxResponseElements + 1), fmt.Sprintf("more than %d elements", MaxResponseElements)},
		{"commas inside strings do not count", `{"status":{"s":"` + strings.Repeat(",", MaxResponseElements+1) + `"}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeResponse([]byte(tt.body))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("DecodeResponse = %v, want success", err)
				}
				return
			}
			var ce *ContractError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecodeResponse = %v, want a ContractError containing %q", err, tt.want)
			}
		})
	}
}
