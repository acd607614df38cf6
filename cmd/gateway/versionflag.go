package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/opgate/opgate/internal/version"
)

// addVersionFlag gives root a --version (-v) flag that prints what
// `gateway version` prints. cobra's own version flag prints through
// text/template when its format is changed, and executing a template
// anywhere in the binary keeps every exported method of every type alive
// in the linker (about 40 % of the binary's code). So the flag is declared
// here as cobra would declare it, and handled where cobra ends up with a
// non-runnable root: in its help function.
func addVersionFlag(root *cobra.Command) {
	root.Flags().BoolP("version", "v", false, "version for "+root.Name())
	// Marked as cobra marks its own, so completion treats it the same.
	_ = root.Flags().SetAnnotation("version", cobra.FlagSetByCobraAnnotation, []string{"true"})
	help := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c == c.Root() && flagSet(c, "version") && !flagSet(c, "help") {
			if _, err := fmt.Fprintln(c.OutOrStdout(), version.String()); err != nil {
				c.PrintErrln(err)
			}
			return
		}
		help(c, args)
	})
}

// flagSet reports whether the boolean flag name is on; false when the
// command has no such flag.
func flagSet(c *cobra.Command, name string) bool {
	on, err := c.Flags().GetBool(name)
	return err == nil && on
}
