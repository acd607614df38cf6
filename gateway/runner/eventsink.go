package runner

import (
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/opgate/opgate/gateway/apply"
)

// warningSink is the recorder's sink that logs, at warn level, an Event the
// API server refuses because its namespace is being deleted: it refuses
// every new Event there, and client-go drops them with a klog line only.
// Such an Event is often the one that says why an object stays
// Terminating (a delete callback failing for good, and how to release its
// finalizer): the log is then what tells (docs/operations.md).
type warningSink struct {
	record.EventSink
	log *slog.Logger
}

func (s warningSink) Create(e *corev1.Event) (*corev1.Event, error) {
	out, err := s.EventSink.Create(e)
	if err != nil && apply.NamespaceTerminating(err) {
		o := e.InvolvedObject
		s.log.Warn("Event not recorded: its namespace is being deleted", "object", o.Namespace+"/"+o.Name, "kind", o.Kind,
			"type", e.Type, "reason", e.Reason, "message", e.Message)
	}
	return out, err
}
