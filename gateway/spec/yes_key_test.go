package spec

import (
	"strings"
	"testing"
)

// A bare `yes` (or `y`) key is YAML 1.1's true as a bare `on` is. The
// error must speak of what the user wrote, not tell them they wrote `on`.
func TestABareYesKeyIsNotSaidToBeOn(t *testing.T) {
	data := strings.Replace(minimal, "events: [create]", "yes: [create]", 1)
	_, err := Parse([]byte(data), "operators.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	if strings.Contains(err.Error(), "`on` was renamed") {
		t.Fatalf("a document without any `on` key is told: %v", err)
	}
}
