package engine

import (
	"context"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opgate/opgate/gateway/apply"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// missingKind is a child or related kind that the API server served at no
// version when the controller was built: its CRD is not installed (an uninstall
// removed a dependency's CRDs first, or it is not installed yet). Such a
// kind has no objects, so the operator runs without it rather than not at
// all: waiting for it would hold every parent being deleted behind a
// finalizer whose delete callback needs nothing of that kind. It gets no
// informer (there is nothing to list, send, prune or wake by); a child of
// it that a handler answers fails temporarily (missingChild); Ready names
// it (missingHealth); and once it is served the controller is built again
// with it (awaitMissingKinds).
type missingKind struct {
	role             string // "children[0]", "related[1]": as the spec names it
	apiVersion, kind string
	err              error // the mapping's failure
}

// mapKind maps the child or related kind of role. A kind the API server
// serves at no version comes back as missing (no mapping, no error): it
// has no objects. One served at other versions than the declared one (a
// CRD that stopped serving it, served: false) does not: its objects are
// there, under another version, and running without it would send it
// empty and let parents go while their label-owned children stay; that
// fails KindNotFound as a missing kind did before, naming the versions
// served and what to do.
func mapKind(mapper meta.RESTMapper, role, apiVersion, kind string) (*meta.RESTMapping, *missingKind, error) {
	m, err := apply.Mapping(mapper, apiVersion, kind)
	if err == nil || failure.As(err).Reason != spec.ReasonKindNotFound {
		return m, nil, err
	}
	gv, _ := schema.ParseGroupVersion(apiVersion) // mapped already: valid
	gk := schema.GroupKind{Group: gv.Group, Kind: kind}
	served, aerr := mapper.RESTMappings(gk) // no version: any served one
	if aerr != nil && !meta.IsNoMatchError(aerr) {
		return nil, nil, failure.Temporaryf(spec.ReasonAPIServerUnreachable,
			"%s %s (spec.%s) is not served at %s; cannot ask discovery whether another version is: %w", apiVersion, kind, role, gv.Version, aerr)
	}
	if len(served) == 0 {
		return nil, &missingKind{role: role, apiVersion: apiVersion, kind: kind, err: err}, nil
	}
	versions := make([]string, 0, len(served))
	for _, s := range served {
		versions = append(versions, s.GroupVersionKind.GroupVersion().String())
	}
	sort.Strings(versions)
	return nil, nil, failure.Temporaryf(spec.ReasonKindNotFound,
		"%s %s (spec.%s) is not served, but the kind is, as %s: update the operator's spec.%s.apiVersion to a served version (it does not run without a kind whose objects are there, as it does without one served at no version): %w",
		apiVersion, kind, role, strings.Join(versions, ", "), role, err)
}

// groupKind is k's group and kind; a kind is declared once whatever its
// version, as children are matched to it.
func (k missingKind) groupKind() schema.GroupKind {
	gv, _ := schema.ParseGroupVersion(k.apiVersion) // mapped already: valid
	return schema.GroupKind{Group: gv.Group, Kind: k.kind}
}

// missingHealth is the Ready message of a controller running without some
// of its kinds; "" when none is missing.
func (c *Controller) missingHealth() string {
	if len(c.missing) == 0 {
		return ""
	}
	names := make([]string, 0, len(c.missing))
	for _, k := range c.missing {
		name := k.role + " " + k.apiVersion + " " + k.kind
		if strings.HasPrefix(k.role, "children[") {
			name += " (a child of it a handler answers fails, KindNotFound, retried with backoff)"
		}
		names = append(names, name)
	}
	return "running without " + strings.Join(names, ", ") +
		": served by the API server at no version (its CRD not installed); none of its objects is watched or sent (there are none), and the operator takes the kind up by itself once its CRD is created"
}

// missingChild refuses, temporarily, a child of a kind the controller
// runs without: the mapper might serve it by now, but the controller has
// neither its informer nor its scope, and is about to be built again with
// them (awaitMissingKinds); the retry then applies it.
func (c *Controller) missingChild(child *unstructured.Unstructured) error {
	gk := child.GroupVersionKind().GroupKind()
	for _, k := range c.missing {
		if k.groupKind() == gk {
			return failure.Temporaryf(spec.ReasonKindNotFound,
				"the CRD of %s (%s %s, spec.%s) is not installed, no version of the kind is served: child %s not applied; retried with backoff, it is applied once the CRD is created",
				k.kind, k.apiVersion, k.kind, k.role, child.GetName())
		}
	}
	return nil
}

// awaitMissingKinds asks, every missingRecheck until ctx is done, whether
// a missing kind is served now, and then has Run end with errKindRescoped
// so that the Manager builds the controller again with that kind, as it
// does for a kind whose CRD changed scope. Asking the mapper, not watching
// CRDs, covers a kind served by an aggregated API too, and never rebuilds
// before discovery serves the kind (the runner's mapper asks the API
// server about a missed kind's group-version at most every 5 s).
func (c *Controller) awaitMissingKinds(ctx context.Context) {
	if len(c.missing) == 0 {
		return
	}
	t := time.NewTicker(c.missingRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, k := range c.missing {
			if _, err := apply.Mapping(c.Mapper, k.apiVersion, k.kind); err == nil {
				c.log.Info("a child or related kind the operator ran without is served now: the operator starts again with it", "kind", k.apiVersion+" "+k.kind, "role", k.role)
				c.rebuild()
				return
			}
		}
	}
}

// addMissing adds to out, a request's children or related objects by
// kind key, an empty set for each missing kind of role ("children",
// "related"): it has no objects, which is not the same as not knowing them
// (a related selector that cannot be rendered leaves its kind out).
func addMissing[T any](c *Controller, role string, out map[string]map[string]T) {
	for _, k := range c.missing {
		if strings.HasPrefix(k.role, role+"[") {
			out[kindKey(k.apiVersion, k.kind)] = map[string]T{}
		}
	}
}
