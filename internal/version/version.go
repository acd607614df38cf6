// Package version holds the version stamped into opgate binaries at build
// time with -ldflags "-X github.com/opgate/opgate/internal/version.Version=...".
package version

// Version is set by the linker; "dev" in untagged local builds.
var Version = "dev"

// UserAgent is the User-Agent header opgate sends to handlers.
func UserAgent() string { return "opgate/" + Version }
