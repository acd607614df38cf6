package engine

import (
	"context"
	"errors"

	"github.com/opgate/opgate/gateway/apply"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// newChildInformer is newTrackedInformer for a child kind whose cache holds
// rawChild objects, not maps (see rawChild). It lists and watches through a
// REST client of its own (rawCodec decodes the answers) on the connection
// (whose transport may carry the rate limit), rate limiter if any and
// client metrics of rc: Deps.WatchREST, the informers' own connection, or
// else the REST client the dynamic client was made from.
func newChildInformer(rc *rest.RESTClient, m *meta.RESTMapping, namespace string,
	sel selection, what string, indexers cache.Indexers, health *watchHealth) (cache.SharedIndexInformer, error) {
	codec := newRawCodec(m.GroupVersionKind, what)
	gv := m.GroupVersionKind.GroupVersion()
	client, err := rest.NewRESTClient(rc.Get().AbsPath("/").URL(), "", rest.ClientContentConfig{
		AcceptContentTypes: "application/json",
		ContentType:        "application/json",
		GroupVersion:       gv,
		Negotiator:         runtime.NewClientNegotiator(codec, gv),
	}, rc.GetRateLimiter(), rc.Client)
	if err != nil {
		return nil, err
	}
	lw := childListWatch(client, apply.CollectionPath(m, namespace), what, sel, health)
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, client),
		&rawChild{}, cache.SharedIndexInformerOptions{Indexers: indexers, ObjectDescription: m.Resource.String()})
	trackWatchErrors(inf, what, health)
	return inf, nil
}

// childListWatch lists and watches the collection at path through client.
// Each call is one request: client-go's own retries of a lost connection
// (10, 1 s apart, each a dial of up to 30 s) would keep a failure from
// health for minutes; trackedListWatch retries on the gateway's schedule.
func childListWatch(client rest.Interface, path []string, what string, sel selection, health *watchHealth) *cache.ListWatch {
	return trackedListWatch(what, sel, health,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.Get().AbsPath(path...).VersionedParams(&o, metav1.ParameterCodec).MaxRetries(0).Do(ctx).Get()
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.Watch = true
			return client.Get().AbsPath(path...).VersionedParams(&o, metav1.ParameterCodec).MaxRetries(0).Watch(ctx)
		})
}

// errRawChildren: a child informer's REST client could not be made; that
// kind's children are then cached decoded into maps, as other kinds are.
var errRawChildren = errors.New("children are cached decoded: no REST client of their own")
