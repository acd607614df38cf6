package apply

import (
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/gateway/spec"
)

// mappingFailure classifies a failed REST mapping of what (an apiVersion and
// kind): either the API server answered and lacks the kind (KindNotFound,
// which resolves itself once its CRD is installed), or discovery itself
// failed, most often because the API server cannot be reached; calling that
// KindNotFound would send a user looking for a CRD that is there.
func mappingFailure(what string, err error) *failure.Error {
	if meta.IsNoMatchError(err) {
		return failure.Temporaryf(spec.ReasonKindNotFound, "%s not found on the API server: %w", what, err)
	}
	return failure.Temporaryf(spec.ReasonAPIServerUnreachable, "cannot reach the API server's discovery to resolve %s: %w", what, err)
}
