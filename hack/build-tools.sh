#!/usr/bin/env bash
# Builds the real kube-apiserver and kube-controller-manager (v1.36.3), etcd and
# etcdutl (v3.6.8) and helm (v4.3.2) that cluster tests, drills,
# hack/local-cluster.sh and benchmarks run, into the git-ignored _output/bin.
# Already-built binaries are kept; a cold build takes several minutes.
set -o errexit
set -o nounset
set -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="${ROOT}/_output/bin"
mkdir -p "${OUT}"
cd "${ROOT}/hack/tools"

if [ ! -x "${OUT}/etcd" ]; then
    echo "building etcd into ${OUT}"
    go build -o "${OUT}/etcd" ./etcd
fi
if [ ! -x "${OUT}/etcdutl" ]; then
    echo "building etcdutl into ${OUT}"
    go build -o "${OUT}/etcdutl" go.etcd.io/etcd/etcdutl/v3
fi
# The version is set so that kubectl and discovery report v1.36.3.
KUBE_LDFLAGS="-X k8s.io/component-base/version.gitVersion=v1.36.3 \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36 \
    -X k8s.io/component-base/version.gitTreeState=clean"
for cmd in kube-apiserver kube-controller-manager; do
    if [ ! -x "${OUT}/${cmd}" ]; then
        echo "building ${cmd} v1.36.3 into ${OUT} (several minutes the first time)"
        go build -ldflags "${KUBE_LDFLAGS}" -o "${OUT}/${cmd}" "k8s.io/kubernetes/cmd/${cmd}"
    fi
done
if [ ! -x "${OUT}/helm" ]; then
    echo "building helm into ${OUT}"
    (cd helm && go build -ldflags "-X helm.sh/helm/v4/internal/version.version=v4.3.2" -o "${OUT}/helm" helm.sh/helm/v4/cmd/helm)
fi
