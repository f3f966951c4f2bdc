# syntax=docker/dockerfile:1
#
# capstan-apiserver and capstan-controller-manager as one distroless image, for artifacts/ (docs/deploy.md):
#
#   docker build -t registry.example.com/capstan/capstan-apiserver:v0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ... --push .
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts
# and the platform arguments.

# The builder runs on the build machine's platform and cross-compiles, which
# is fast because nothing needs cgo.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src

# Modules first, so that a change in the code reuses the downloaded modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG TARGETOS
ARG TARGETARCH
# No -X on k8s.io/component-base/version: the apiserver library derives the
# Kubernetes version it emulates from it, so Capstan's own version does not
# belong there.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/apiserver ./cmd/controller-manager

# Static binary, no shell, no package manager; runs as nonroot (65532), which
# is what the Deployment's securityContext expects.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/apiserver /usr/local/bin/capstan-apiserver
COPY --from=build /out/controller-manager /usr/local/bin/capstan-controller-manager
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/capstan-apiserver"]
