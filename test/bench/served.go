package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// servedSample is how many objects of each kind servedBytes reads: enough
// for a mean, few enough to cost the API server nothing measurable.
const servedSample = 50

// servedBytes is the mean JSON size, managedFields included, of the first
// servedSample parents and children in namespace ns as the API server
// serves them, by resource: about what each write makes it decode, patch
// and encode, and each watch event carry. Systems writing the same
// requests can still cost the control plane differently by the size of
// what they write. The first of each is kept, indented, in
// keep+"-"+resource+".json", to compare the systems' objects field by field.
func servedBytes(ctx context.Context, dyn dynamic.Interface, ns, keep string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, gvr := range []schema.GroupVersionResource{parentGVR, deployGVR} {
		list, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{Limit: servedSample})
		if err != nil {
			return nil, fmt.Errorf("served size of %s in %s: %w", gvr.Resource, ns, err)
		}
		if len(list.Items) == 0 || strings.HasPrefix(list.Items[0].GetName(), singlePrefix) {
			continue // none of the workload's
		}
		total, counted := 0, 0
		for i := range list.Items {
			if strings.HasPrefix(list.Items[i].GetName(), singlePrefix) {
				continue // not the workload's
			}
			counted++
			b, err := json.Marshal(list.Items[i].Object)
			if err != nil {
				return nil, fmt.Errorf("served size of %s %s/%s: %w", gvr.Resource, ns, list.Items[i].GetName(), err)
			}
			total += len(b)
		}
		out[gvr.Resource] = float64(total) / float64(counted)
		first, err := json.MarshalIndent(list.Items[0].Object, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(keep+"-"+gvr.Resource+".json", append(first, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	return out, nil
}
