package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/opgate/opgate/gateway/spec"
)

// errInvalid is returned once the errors themselves have been printed, so
// that main's "error:" line sums up instead of repeating them.
var errInvalid = errors.New("invalid WebhookOperator files")

func newValidateCommand() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate FILE... | -f FILE...",
		Short: "Check WebhookOperator files as the gateway would, without a cluster",
		Long: `Check WebhookOperator files (several documents per file, several files, or a
directory of them) against the same JSON Schema and rules the gateway and the CRD
apply. Files are arguments, or given with -f as to gateway run, or both. Every
error is printed to stderr with its file, line and JSON path; the exit status is
non-zero if there is any, and a file that defines no WebhookOperator is an error.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			files = append(files, args...)
			if len(files) == 0 {
				return errors.New("give at least one file, as an argument or with -f")
			}
			return validateFiles(cmd.OutOrStdout(), cmd.ErrOrStderr(), files)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "WebhookOperator file or directory (repeatable)")
	return cmd
}

func validateFiles(stdout, stderr io.Writer, files []string) error {
	ops, err := spec.LoadFiles(files...)
	var list spec.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			if _, werr := fmt.Fprintln(stderr, e); werr != nil {
				return werr
			}
		}
		return fmt.Errorf("%w: %d %s", errInvalid, len(list), plural(len(list), "error", "errors"))
	}
	if err != nil {
		return err
	}
	for _, op := range ops {
		n := len(op.Spec.Callbacks)
		if _, err := fmt.Fprintf(stdout, "%s: ok (watch %s %s, %d %s)\n",
			op.Name, op.Spec.Watch.APIVersion, op.Spec.Watch.Kind, n, plural(n, "callback", "callbacks")); err != nil {
			return err
		}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
