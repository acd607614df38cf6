// Command gencrd prints the WebhookOperator CRD, generated from the JSON
// Schema that `gateway run -f` validates files with:
//
//	go run ./hack/gencrd > crds/opgate.dev_webhookoperators.yaml
//
// A test in gateway/spec fails when the committed CRD differs from this
// output, so run it after every change to the schema.
package main

import (
	"fmt"
	"os"

	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/spec/crdgen"
)

func main() {
	out, err := crdgen.CRD(spec.JSONSchema())
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencrd:", err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		fmt.Fprintln(os.Stderr, "gencrd:", err)
		os.Exit(1)
	}
}
