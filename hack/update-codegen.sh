#!/usr/bin/env bash
# Regenerates every generated file: zz_generated.* helpers in pkg/apis and the
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
trap 'rm -f "${SCHEMA}"' EXIT
go run ./hack/models-schema > "${SCHEMA}"

kube::codegen::gen_client \
    --with-watch \
    --with-applyconfig \
    --applyconfig-openapi-schema "${SCHEMA}" \
    --output-dir "${ROOT}/pkg/generated" \
    --output-pkg "${MODULE}/pkg/generated" \
    --boilerplate "${BOILERPLATE}" \
    "${ROOT}/pkg/apis"
