package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/opgate/opgate/internal/version"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "gateway",
		Short:         "opgate: a Kubernetes operator gateway that calls your HTTP handlers",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addVersionFlag(root) // as `gateway version` prints it
	root.AddCommand(newVersionCommand(), newRunCommand())
	root.AddCommand(newValidateCommand())
	root.AddCommand(newCallCommand())
	root.AddCommand(newRBACCommand())
	root.AddCommand(newStatusCommand(), newReconcileCommand())
	root.AddCommand(newRemoveOperatorsCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the gateway's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version.String())
			return err
		},
	}
}
