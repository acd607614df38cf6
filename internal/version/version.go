// Package version holds the version stamped into opgate binaries at build
// time with -ldflags "-X github.com/opgate/opgate/internal/version.Version=...".
package version

import (
	"runtime/debug"
	"sync"
)

// Version is set by the linker; "dev" in builds without it.
var Version = "dev"

// String is the version to show: Version when the linker set it, else the
// module version `go install ...@v1.2.3` records in the binary, else "dev"
// with the VCS revision a build from a checkout records, if any. It is
// worked out once: the User-Agent of every callback carries it.
var String = sync.OnceValue(func() string {
	info, _ := debug.ReadBuildInfo()
	return resolve(Version, info)
})

// UserAgent is the User-Agent header opgate sends to handlers.
func UserAgent() string { return "opgate/" + String() }

func resolve(linked string, info *debug.BuildInfo) string {
	if linked != "dev" && linked != "" {
		return linked
	}
	if info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision == "" {
		return "dev"
	}
	v := "dev-" + revision[:min(12, len(revision))]
	if modified == "true" {
		v += "-dirty"
	}
	return v
}
