#!/usr/bin/env bash
# Regenerates every generated file: zz_generated.* helpers and protobuf
# (generated.proto, generated.pb.go, struct tags) in pkg/apis and the
# OpenAPI definitions, clientset, listers, informers and apply configurations in
# pkg/generated. Generators come from the k8s.io/code-generator version pinned in
# go.mod (its `tool` lines) and are installed into the git-ignored _output/bin.
set -o errexit
set -o nounset
set -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"
MODULE=$(go list -m)

go mod download k8s.io/code-generator k8s.io/kube-openapi
CODEGEN_PKG=$(go list -m -f '{{.Dir}}' k8s.io/code-generator)
export GOBIN="${ROOT}/_output/bin"
mkdir -p "${GOBIN}"

# shellcheck source=/dev/null
source "${CODEGEN_PKG}/kube_codegen.sh"

BOILERPLATE="${ROOT}/hack/boilerplate.go.txt"
REPORT="${ROOT}/api/api-rules/violation_exceptions.list"
mkdir -p "$(dirname "${REPORT}")"

kube::codegen::gen_helpers \
    --boilerplate "${BOILERPLATE}" \
    "${ROOT}/pkg/apis"

# Protobuf for the versioned types, as Kubernetes' own: go-to-protobuf writes
# generated.proto, runs protoc with code-generator's gogo plugin into
# generated.pb.go and adds the protobuf struct tags to types.go. protoc comes
# from Debian's protobuf-compiler, pinned: another protoc may write other code.
PROTOC_VERSION="libprotoc 3.21.12"
if [ "$(protoc --version 2>/dev/null)" != "${PROTOC_VERSION}" ]; then
    echo "make generate needs protoc (${PROTOC_VERSION}); on Debian bookworm: apt-get install protobuf-compiler (its 3.21.12)" >&2
    exit 1
fi
go install k8s.io/code-generator/cmd/go-to-protobuf k8s.io/code-generator/cmd/go-to-protobuf/protoc-gen-gogo golang.org/x/tools/cmd/goimports
# protoc finds imports by Go import path: a folder of links gives it this
# module, apimachinery's .proto files and gogo's extensions under theirs.
PROTO_ROOT=$(mktemp -d)
trap 'rm -rf "${PROTO_ROOT}" "${SCHEMA:-}"' EXIT
mkdir -p "${PROTO_ROOT}/k8s.io" "${PROTO_ROOT}/github.com/gogo" "${PROTO_ROOT}/$(dirname "${MODULE}")"
ln -s "$(go list -m -f '{{.Dir}}' k8s.io/apimachinery)" "${PROTO_ROOT}/k8s.io/apimachinery"
ln -s "$(go list -m -f '{{.Dir}}' github.com/gogo/protobuf)" "${PROTO_ROOT}/github.com/gogo/protobuf"
ln -s "${ROOT}" "${PROTO_ROOT}/${MODULE}"
PATH="${GOBIN}:${PATH}" "${GOBIN}/go-to-protobuf" \
    --go-header-file "${BOILERPLATE}" \
    --output-dir "${PROTO_ROOT}" \
    --proto-import "${PROTO_ROOT}" \
    --apimachinery-packages=-k8s.io/apimachinery/pkg/util/intstr,-k8s.io/apimachinery/pkg/api/resource,-k8s.io/apimachinery/pkg/runtime/schema,-k8s.io/apimachinery/pkg/runtime,-k8s.io/apimachinery/pkg/apis/meta/v1 \
    --packages="${MODULE}/pkg/apis/config/v1beta1,${MODULE}/pkg/apis/config/v1alpha1"

kube::codegen::gen_openapi \
    --output-dir "${ROOT}/pkg/generated/openapi" \
    --output-pkg "${MODULE}/pkg/generated/openapi" \
    --output-model-name-file zz_generated.model_name.go \
    --report-filename "${REPORT}" \
    ${UPDATE_API_KNOWN_VIOLATIONS:+"--update-report"} \
    --boilerplate "${BOILERPLATE}" \
    "${ROOT}/pkg/apis"

# Apply configurations are typed from the OpenAPI models just generated.
SCHEMA=$(mktemp)
go run ./hack/models-schema > "${SCHEMA}"

kube::codegen::gen_client \
    --with-watch \
    --prefers-protobuf \
    --with-applyconfig \
    --applyconfig-openapi-schema "${SCHEMA}" \
    --output-dir "${ROOT}/pkg/generated" \
    --output-pkg "${MODULE}/pkg/generated" \
    --boilerplate "${BOILERPLATE}" \
    "${ROOT}/pkg/apis"
