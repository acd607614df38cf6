package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/opgate/opgate/callbacks"
)

// Callback paths, as examples/operators/memcached.yaml and the README's
// registration declare them. The handler routes on them, not on the ids,
// which a registration may name as it likes.
const (
	pathCreate = "/create"
	pathResize = "/update"
	pathDelete = "/delete"
	pathSync   = "/sync"
	pathBackup = "/backup"
)

// What the Deployment runs, from the guide.
const (
	memcachedImage = "memcached:1.4.36"
	memcachedPort  = 11211
	minSize        = 1
	maxSize        = 10
)

// instanceLabel tells the pods of one Memcached apart from another's: with
// the guide's bare app=memcached selector, two instances in a namespace
// would adopt each other's pods.
const instanceLabel = "memcached_cr"

// handlers are the Memcached operator's callbacks. They are stateless: all
// they need is in the request.
type handlers struct {
	log *slog.Logger
	now func() time.Time // stamps backups; injectable for tests
}

func newHandlers(log *slog.Logger, now func() time.Time) *handlers {
	if now == nil {
		now = time.Now
	}
	return &handlers{log: log, now: now}
}

func (h *handlers) register(mux *callbacks.Mux) {
	mux.Handle(pathCreate, h.createDeployment)
	mux.Handle(pathResize, h.resize)
	mux.Handle(pathDelete, h.cleanup)
	mux.Handle(pathSync, h.status)
	mux.Handle(pathBackup, h.backup)
}

func (h *handlers) createDeployment(_ context.Context, req *callbacks.Request) (*callbacks.Response, error) {
	size, err := desiredSize(req.Object)
	if err != nil {
		return nil, err
	}
	name := req.Object.GetName()
	return callbacks.Children(deployment(name, size)).
		WithEvent(callbacks.EventTypeNormal, "Created", fmt.Sprintf("Deployment %s with %d replicas", name, size)), nil
}

// resize answers the same Deployment with the new size; the gateway applies
// it in place with server-side apply.
func (h *handlers) resize(_ context.Context, req *callbacks.Request) (*callbacks.Response, error) {
	size, err := desiredSize(req.Object)
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("to %d replicas", size)
	if req.Old != nil {
		if old, found, err := unstructured.NestedInt64(req.Old.Object, "spec", "size"); err == nil && found {
			msg = fmt.Sprintf("from %d to %d replicas", old, size)
		}
	}
	return callbacks.Children(deployment(req.Object.GetName(), size)).
		WithEvent(callbacks.EventTypeNormal, "Scaled", msg), nil
}

// status reports this instance's live pods. It answers no children: a sync
// answer with children is the full desired set, and there is no need to
// restate the Deployment here.
func (h *handlers) status(_ context.Context, req *callbacks.Request) (*callbacks.Response, error) {
	name := req.Object.GetName()
	nodes := []string{} // never null: null would delete status.nodes
	for _, pod := range req.RelatedObjects("v1", "Pod") {
		if pod.GetLabels()[instanceLabel] == name && isLive(pod) {
			nodes = append(nodes, pod.GetName())
		}
	}
	slices.Sort(nodes)
	return callbacks.Status(map[string]any{"nodes": nodes}), nil
}

// cleanup has nothing to delete (the Deployment goes with its owner); it
// shows where external resources would be released before the finalizer.
func (h *handlers) cleanup(ctx context.Context, req *callbacks.Request) (*callbacks.Response, error) {
	h.log.InfoContext(ctx, "cleaning up memcached", "object", objectKey(req.Object), "delivery", req.UID)
	return callbacks.Finalized(true), nil
}

func (h *handlers) backup(ctx context.Context, req *callbacks.Request) (*callbacks.Response, error) {
	at := h.now().UTC().Format(time.RFC3339)
	h.log.InfoContext(ctx, "backing up memcached", "object", objectKey(req.Object), "at", at)
	return callbacks.Status(map[string]any{"lastBackup": at}).
		WithEvent(callbacks.EventTypeNormal, "Backup", "backed up at "+at), nil
}

// desiredSize reads spec.size. The CRD already enforces it; a handler
// checks anyway, since it may run against an older CRD. A bad size is
// permanent: only a new spec can fix it.
func desiredSize(obj *unstructured.Unstructured) (int64, error) {
	size, found, err := unstructured.NestedInt64(obj.Object, "spec", "size")
	switch {
	case err != nil:
		return 0, callbacks.Permanent(fmt.Sprintf("spec.size is not an integer: %v", err))
	case !found:
		return 0, callbacks.Permanent("spec.size is not set")
	case size < minSize || size > maxSize:
		return 0, callbacks.Permanent(fmt.Sprintf("spec.size %d is outside %d..%d", size, minSize, maxSize))
	}
	// The name becomes a label value, which is shorter than a name may be.
	if errs := validation.IsValidLabelValue(obj.GetName()); len(errs) > 0 {
		return 0, callbacks.Permanent(fmt.Sprintf("name %q cannot be the %s label: %v", obj.GetName(), instanceLabel, errs))
	}
	return size, nil
}

func podLabels(name string) map[string]any {
	return map[string]any{"app": "memcached", instanceLabel: name}
}

func deployment(name string, replicas int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": name, "labels": podLabels(name)},
		"spec": map[string]any{
			"replicas": replicas,
			"selector": map[string]any{"matchLabels": podLabels(name)},
			"template": map[string]any{
				"metadata": map[string]any{"labels": podLabels(name)},
				"spec": map[string]any{
					"containers": []any{map[string]any{
						"name":    "memcached",
						"image":   memcachedImage,
						"command": []any{"memcached", "-m=64", "-o", "modern", "-v"},
						"ports":   []any{map[string]any{"name": "memcached", "containerPort": int64(memcachedPort)}},
					}},
				},
			},
		},
	}}
}

// isLive says whether a pod counts as a node: not being deleted and not
// finished.
func isLive(pod *unstructured.Unstructured) bool {
	if pod.GetDeletionTimestamp() != nil {
		return false
	}
	phase, _, _ := unstructured.NestedString(pod.Object, "status", "phase")
	return phase != string(corev1.PodSucceeded) && phase != string(corev1.PodFailed)
}

func objectKey(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return ns + "/" + obj.GetName()
	}
	return obj.GetName()
}
