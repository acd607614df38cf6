// Command opgate-image builds the gateway's container image without a
// container engine: an empty base plus two layers written here (a
// distroless-style root with a nonroot user and CA certificates, then the
// static gateway binary), saved as an image tarball that `docker load`,
// `podman load` and `crane push` accept. Nothing is pulled: the machines
// that build opgate have no registry access, so the base is built, not
// fetched. The Dockerfile at the repository root builds the same image for
// those who have Docker.
//
//	opgate-image --binary bin/linux_amd64/gateway --version v0.3.0 --out bin/gateway-image.tar
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "opgate-image:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("opgate-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.binary, "binary", "", "the static linux gateway binary to put at /gateway (required)")
	fs.StringVar(&o.out, "out", "bin/gateway-image.tar", "image tarball to write")
	fs.StringVar(&o.repository, "repository", "opgate/gateway", "repository of the tag recorded in the tarball")
	fs.StringVar(&o.version, "version", "dev", "version: the tag and org.opencontainers.image.version")
	fs.StringVar(&o.revision, "revision", "", "VCS revision: org.opencontainers.image.revision")
	fs.StringVar(&o.source, "source", "https://github.com/opgate/opgate", "org.opencontainers.image.source")
	fs.StringVar(&o.caCerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle copied to /etc/ssl/certs/ca-certificates.crt, for handlers served over https; empty for none")
	fs.StringVar(&o.arch, "arch", envOr("GOARCH", runtime.GOARCH), "the binary's architecture")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.binary == "" {
		return fmt.Errorf("--binary is required")
	}
	created, err := sourceDate(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	o.created = created
	img, err := build(o)
	if err != nil {
		return err
	}
	ref := o.repository + ":" + tagOf(o.version)
	if err := write(o.out, ref, img); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "opgate-image: wrote %s (%s, linux/%s)\n", o.out, ref, o.arch)
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// sourceDate is the image's creation time: SOURCE_DATE_EPOCH when set (the
// reproducible-builds convention), else the Unix epoch, so that the same
// inputs give the same image digest.
func sourceDate(v string) (time.Time, error) {
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	s, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds: %w", v, err)
	}
	return time.Unix(s, 0).UTC(), nil
}

var badTagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// tagOf turns a version ("v1.2.3+meta", "a8c12f5-dirty") into a valid tag.
func tagOf(version string) string {
	t := badTagChars.ReplaceAllString(version, "-")
	if t == "" || t[0] == '.' || t[0] == '-' {
		t = "v" + t
	}
	return t[:min(len(t), 128)]
}
