//go:build tools

// Package tools pins helm, used to install opgate's chart in end-to-end tests.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
