package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/opgate/opgate/callbacks"
)

// Callback paths, as examples/operators/nginx.yaml declares them; the
// handler routes on them.
const (
	pathCreate = "/create"
	pathUpdate = "/update"
	pathDelete = "/delete"
	pathSync   = "/sync"
)

const (
	// serverLabel marks the pods of one NginxServer; the related Pod
	// selector of nginx.yaml uses it.
	serverLabel     = "nginxserver"
	defaultReplicas = 1
	minReplicas     = 1
	maxReplicas     = 10
	// imageRetry is how soon to look again at an image without a tag: a
	// user editing the resource is likely to finish soon.
	imageRetry = 10 * time.Second
)

// handlers are the NginxServer operator's callbacks.
type handlers struct {
	log *slog.Logger
}

func (h *handlers) register(mux *callbacks.Mux) {
	mux.Handle(pathCreate, h.create)
	mux.Handle(pathUpdate, h.update)
	mux.Handle(pathDelete, h.delete)
	mux.Handle(pathSync, h.sync)
}

func (h *handlers) create(_ context.Context, req *callbacks.Request) (*callbacks.Response, error) {
	s, err := desiredServer(req)
	if err != nil {
		return nil, err
	}
	return callbacks.Children(s.deployment()).WithEvent(callbacks.EventTypeNormal, "Created", s.String()), nil
}

func (h *handlers) update(_ context.Context, req *callbacks.Request) (*callbacks.Response, error) {
	s, err := desiredServer(req)
	if err != nil {
		return nil, err
	}
	return callbacks.Children(s.deployment()).WithEvent(callbacks.EventTypeNormal, "Updated", s.String()), nil
}

// sync reports what the Deployment and the pods say. It answers no
// children, so nothing is pruned.
func (h *handlers) sync(_ context.Context, req *callbacks.Request) (*callbacks.Response, error) {
	name := req.Object.GetName()
	var available int64
	if d := req.Child("apps/v1", "Deployment", name); d != nil {
		// Absent until the Deployment has reported once: none available.
		available, _, _ = unstructured.NestedInt64(d.Object, "status", "availableReplicas")
	}
	pods := []string{} // never null: null would delete status.podNames
	for _, pod := range req.RelatedObjects("v1", "Pod") {
		if pod.GetLabels()[serverLabel] == name && isLive(pod) {
			pods = append(pods, pod.GetName())
		}
	}
	slices.Sort(pods)
	return callbacks.Status(map[string]any{"availableReplicas": available, "podNames": pods}), nil
}

func (h *handlers) delete(ctx context.Context, req *callbacks.Request) (*callbacks.Response, error) {
	h.log.InfoContext(ctx, "nginx server deleted; the Deployment goes with it", "object", objectKey(req.Object))
	return callbacks.Finalized(true), nil
}

// server is what an NginxServer asks for.
type server struct {
	name     string
	replicas int64
	image    string
}

func (s server) String() string {
	return fmt.Sprintf("Deployment %s: %d replicas of %s", s.name, s.replicas, s.image)
}

// desiredServer reads and checks the spec. An image without a tag is
// a temporary error, as its author is likely still editing it; an image
// that can never be pulled, or a bad replica count, is permanent.
func desiredServer(req *callbacks.Request) (server, error) {
	image, _, err := req.ObjectString("spec", "image")
	if err != nil {
		return server{}, callbacks.Permanent(fmt.Sprintf("spec.image is not a string: %v", err))
	}
	if image == "" {
		return server{}, callbacks.Temporary("spec.image is empty; waiting for it to be set", imageRetry)
	}
	switch err := checkImage(image); {
	case errors.Is(err, errNoTag):
		return server{}, callbacks.Temporary(errNoTag.Error()+"; waiting for it to be set", imageRetry)
	case err != nil:
		return server{}, callbacks.Permanent(fmt.Sprintf("spec.image %q is not a valid image reference: %v", image, err))
	}

	replicas := int64(defaultReplicas)
	if _, found, _ := unstructured.NestedFieldNoCopy(req.Object.Object, "spec", "replicas"); found {
		if replicas, err = req.ObjectInt64("spec", "replicas"); err != nil {
			return server{}, callbacks.Permanent(err.Error())
		}
	}
	if replicas < minReplicas || replicas > maxReplicas {
		return server{}, callbacks.Permanent(fmt.Sprintf("spec.replicas %d is outside %d..%d", replicas, minReplicas, maxReplicas))
	}
	name := req.Object.GetName()
	if errs := validation.IsValidLabelValue(name); len(errs) > 0 {
		return server{}, callbacks.Permanent(fmt.Sprintf("name %q cannot be the %s label: %v", name, serverLabel, errs))
	}
	return server{name: name, replicas: replicas, image: image}, nil
}

func podLabels(name string) map[string]any {
	return map[string]any{"app": "nginx", serverLabel: name}
}

func (s server) deployment() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": s.name, "labels": podLabels(s.name)},
		"spec": map[string]any{
			"replicas": s.replicas,
			"selector": map[string]any{"matchLabels": podLabels(s.name)},
			"template": map[string]any{
				"metadata": map[string]any{"labels": podLabels(s.name)},
				"spec": map[string]any{
					"containers": []any{map[string]any{
						"name":  "nginx",
						"image": s.image,
						"ports": []any{map[string]any{"name": "http", "containerPort": int64(80)}},
					}},
				},
			},
		},
	}}
}

// isLive says whether a pod counts: not being deleted and not finished.
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
