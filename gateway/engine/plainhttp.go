package engine

import (
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/opgate/opgate/gateway/spec"
)

// warnPlainHTTP logs one warning for an operator whose handlers are called
// over plain http on a host outside the node and the cluster: there the
// objects, the signature and a bearer token cross a network in clear text.
// It runs once per operator start, however many callbacks share the URL, so
// the warning is seen without flooding the log on every call.
func warnPlainHTTP(log *slog.Logger, op *spec.WebhookOperator) {
	var exposed []string
	for _, cb := range op.Spec.Callbacks {
		u, err := url.Parse(cb.EffectiveHandler(op.Spec.Handler).Endpoint())
		if err != nil || u.Scheme != "http" || internalHost(u.Hostname()) {
			continue
		}
		shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
		if !slices.Contains(exposed, shown) {
			exposed = append(exposed, shown)
		}
	}
	if len(exposed) > 0 {
		log.Warn("handler called over plain http outside the cluster: requests, signatures and bearer tokens travel unencrypted; use https",
			"urls", exposed)
	}
}

// internalHost reports whether plain http to host stays on the node or in
// the cluster network: a loopback name or address, a Service name
// (*.svc, *.svc.cluster.local) or a single-label name, which only the
// cluster's DNS search path resolves.
func internalHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	switch {
	case host == "localhost", strings.HasSuffix(host, ".localhost"):
		return true
	case strings.HasSuffix(host, ".svc"), strings.HasSuffix(host, ".svc.cluster.local"):
		return true
	default:
		return host != "" && !strings.Contains(host, ".")
	}
}
