# opgate — the README's two commands are `make demo` and `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/opgate/opgate/internal/version.Version=$(VERSION)

# Version-keyed toolchain cache (see docs/development.md).
OPGATE_TOOLS_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/opgate/k8s-v1.32.4
TOOLS_BIN := $(OPGATE_TOOLS_DIR)/bin
export OPGATE_TOOLS_DIR
# envtest reads the control-plane binaries from here and never downloads.
export KUBEBUILDER_ASSETS := $(TOOLS_BIN)

# Local cluster (make cluster-up): data, ports and kubeconfig.
CLUSTER_DIR ?= $(CURDIR)/.cache/cluster
CLUSTER_PORT ?= 6443
export PATH := $(TOOLS_BIN):$(PATH)

GO_TEST_FLAGS ?=
STATICCHECK := $(OPGATE_TOOLS_DIR)/bin/staticcheck

.PHONY: all build tools test vet lint unit integration e2e cluster-up cluster-down demo bench fuzz clean

all: build

build:
	go build -ldflags '$(LDFLAGS)' -o bin/gateway ./cmd/gateway

tools:
	@bash hack/build-tools.sh

vet:
	go vet ./...

$(STATICCHECK):
	GOBIN=$(TOOLS_BIN) go install honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: vet $(STATICCHECK)
	gofmt -l . | (! grep .) || (echo "gofmt: files above need formatting" >&2; exit 1)
	$(STATICCHECK) ./...

# Unit and integration tests: integration tests start envtest's real
# kube-apiserver + etcd from $(KUBEBUILDER_ASSETS).
unit: tools
	go test -race -count=1 -timeout 30m $(GO_TEST_FLAGS) $$(go list ./... | grep -v /test/e2e)

# End-to-end tests start the full local cluster (hack/localcluster).
e2e: tools
	go test -count=1 -timeout 30m $(GO_TEST_FLAGS) ./test/e2e/...

test: lint unit e2e

cluster-up: tools
	go run ./hack/localcluster up --dir $(CLUSTER_DIR) --port $(CLUSTER_PORT)

cluster-down:
	go run ./hack/localcluster down --dir $(CLUSTER_DIR)

demo: tools build
	bash hack/demo.sh

# Stops what `make demo KEEP=1` left running: gateway, handlers, cluster.
.PHONY: demo-down
demo-down:
	bash hack/demo.sh down

# End to end: the gateway against a raw client-go baseline on a local
# control plane (docs/performance.md). N objects per run; results in $(BENCH_OUT).
N ?= 1000
BENCH_OUT ?= $(CURDIR)/.cache/bench
BENCH_FLAGS ?=
bench: tools build
	go run ./test/bench -n $(N) -out $(BENCH_OUT) -gateway-bin bin/gateway $(BENCH_FLAGS)

# Go micro-benchmarks of the hot paths.
.PHONY: bench-go
bench-go: tools
	go test -run '^$$' -bench . -benchmem $$(go list ./... | grep -v /test/e2e)

FUZZTIME ?= 60s
# Go spends up to 60 s minimizing each new interesting input by default; on
# the multi-kilobyte seeds (operator YAML) that stalls fuzzing at 0 execs/s.
FUZZFLAGS ?= -fuzzminimizetime 1s
fuzz:
	go test -run '^$$' -fuzz FuzzRenderMatchesTextTemplate -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./gateway/jsontemplate
	go test -run '^$$' -fuzz FuzzDecodeResponse -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./callbacks
	go test -run '^$$' -fuzz FuzzRequestFromTheValidatedDocumentIsWhatUnmarshalGives -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./callbacks
	go test -run '^$$' -fuzz FuzzCheckRequestMatchesSchema -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./callbacks
	go test -run '^$$' -fuzz FuzzCheckResponse -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./callbacks
	go test -run '^$$' -fuzz FuzzDecodeMetaMatchesReflectiveDecoding -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./gateway/apply
	go test -run '^$$' -fuzz FuzzWithMetaBuildsWhatTheSettersBuilt -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./gateway/apply
	go test -run '^$$' -fuzz FuzzMarshalWritesWhatEncodingJSONWrites -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./internal/jsonenc
	go test -run '^$$' -fuzz FuzzDecodeMatchesEncodingJSON -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./internal/jsondec
	go test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./gateway/state
	go test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./gateway/spec
	go test -run '^$$' -fuzz FuzzDiff -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./callbacks/essence
	go test -run '^$$' -fuzz FuzzFieldsChanged -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./callbacks/essence
	go test -run '^$$' -fuzz FuzzBuildRequest -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./gateway/call
	go test -run '^$$' -fuzz FuzzDecodeEventMatchesClientGo -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./gateway/watchjson
	go test -run '^$$' -fuzz FuzzFramesAreTheObjectsJSONDecoderReads -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./gateway/watchjson
	go test -run '^$$' -fuzz FuzzRawScanAgreesWithDecoding -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./gateway/jsonscan
	go test -run '^$$' -fuzz FuzzCheckMatchesAPIServerCode -fuzztime $(FUZZTIME) $(FUZZFLAGS) ./gateway/check

clean:
	rm -rf bin .cache

# The WebhookOperator CRD, generated from the schema, into crds/ and the
# chart's crds/ (tests keep them identical and pin the CRD's digest in
# charts/opgate/Chart.yaml and charts/crd-versions.yaml: bump the chart
# version with it).
.PHONY: crds chart
crds:
	go run ./hack/gencrd > crds/opgate.dev_webhookoperators.yaml
	cp crds/opgate.dev_webhookoperators.yaml charts/opgate/crds/opgate.dev_webhookoperators.yaml

# The chart as bin/opgate-<version>.tgz, its appVersion the build's VERSION.
chart: tools
	$(TOOLS_BIN)/helm lint --strict charts/opgate
	$(TOOLS_BIN)/helm package charts/opgate --app-version $(VERSION) -d bin

# The container image (docs/operations.md "Image"). `make static` is the
# binary the Dockerfile and `make image` put at /gateway; `make image`
# writes an image tarball without a container engine (hack/tools/image).
IMAGE_GOARCH ?= $(shell go env GOARCH)
STATIC_BIN ?= bin/linux_$(IMAGE_GOARCH)/gateway
IMAGE_OUT ?= bin/gateway-image.tar
IMAGE_REPOSITORY ?= opgate/gateway
.PHONY: static image image-tar
static:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_GOARCH) go build -trimpath -ldflags '$(LDFLAGS)' -o $(STATIC_BIN) ./cmd/gateway

image: tools image-tar

# image-tar is `make image` without building the tools (the test runs it).
image-tar: static
	$(TOOLS_BIN)/opgate-image --binary $(STATIC_BIN) --out $(IMAGE_OUT) --arch $(IMAGE_GOARCH) \
		--repository $(IMAGE_REPOSITORY) --version $(VERSION) --revision "$$(git rev-parse HEAD 2>/dev/null || true)"
