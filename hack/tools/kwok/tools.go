//go:build tools

// Package tools pins kwok, which plays the kubelet in opgate's local cluster.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
