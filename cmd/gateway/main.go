// Command gateway is the opgate Kubernetes operator gateway.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		// Commands whose exit status means something (gateway call: 1 for a
		// refused answer, 2 for usage) carry it on the error.
		var coded interface{ ExitCode() int }
		if errors.As(err, &coded) {
			os.Exit(coded.ExitCode())
		}
		os.Exit(1)
	}
}
