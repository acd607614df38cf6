# The opgate gateway image, for those who build with Docker or BuildKit:
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t opgate/gateway .
#
# `make image` builds the same image without a container engine (no Docker
# on the build machines, and no registry access there): hack/tools/image
# assembles it from an empty base plus a distroless-style root layer
# (nonroot user 65532, /tmp, CA certificates) and the static binary, and
# writes bin/gateway-image.tar for `docker load`/`podman load`/`crane push`.
# Keep the two in step: a test (test/image) checks both.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETARCH
# `make static` is the build `make image` uses: CGO off, -trimpath, the
# version stamped with the Makefile's LDFLAGS.
RUN make static VERSION="${VERSION}" IMAGE_GOARCH="${TARGETARCH}" STATIC_BIN=/out/gateway

# distroless/static:nonroot: no shell, no package manager, uid 65532. The
# gateway writes nothing to its filesystem, so it runs with
# readOnlyRootFilesystem: true.
FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title="opgate gateway" \
      org.opencontainers.image.description="Kubernetes operators as plain HTTP handlers: the opgate gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/opgate/opgate" \
      org.opencontainers.image.url="https://github.com/opgate/opgate" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/gateway /gateway
USER 65532:65532
ENTRYPOINT ["/gateway", "run"]
