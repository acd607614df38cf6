package runner

import (
	"context"
	"log/slog"
	"net"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// The informers list and watch on a connection of their own, not the one
// the writes share. On one HTTP/2 connection with the writes of every
// worker, kube-apiserver closed the parents' watch about once a second
// while a few thousand objects were updated ("unresponsive": the watcher's
// buffer, about a second of events, stayed full past its wait budget):
// about 20 times per 3000 objects, 60–100 per 10 000, each new watch
// replaying what was missed and encoded again for the gateway alone
// (docs/performance.md). On a connection of its own it was closed twice.

// dialTimeout and dialKeepAlive are client-go's own dialer's.
const (
	dialTimeout   = 30 * time.Second
	dialKeepAlive = 30 * time.Second
)

// dynamicREST makes the REST client the dynamic client and the writes use
// (writes), and one like it on a connection of its own for the informers
// (watches). Both wait on one rate limiter (limitInTransport); watches
// themselves do not wait.
func dynamicREST(cfg *rest.Config, log *slog.Logger) (writes, watches *rest.RESTClient, err error) {
	dcfg := dynamic.ConfigFor(cfg)
	dcfg.GroupVersion, dcfg.APIPath = nil, "/if-you-see-this-search-for-the-break" // as dynamic.NewForConfig
	limitInTransport(dcfg, log)
	if writes, err = rest.UnversionedRESTClientFor(dcfg); err != nil {
		return nil, nil, err
	}
	wcfg := rest.CopyConfig(dcfg)
	// client-go gives configs alike one shared transport, hence one
	// connection. A config with a Dial gets a transport of its own: its
	// cache key holds a DialHolder made anew for each transport asked for,
	// so wcfg must be made into a client once only (each time would open
	// another connection). A caller's own Transport overrides Dial: then
	// both clients share it.
	dial := wcfg.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: dialTimeout, KeepAlive: dialKeepAlive}).DialContext
	}
	wcfg.Dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		return dial(ctx, network, address)
	}
	if watches, err = rest.UnversionedRESTClientFor(wcfg); err != nil {
		return nil, nil, err
	}
	return writes, watches, nil
}
