#!/usr/bin/env bash
# Runs a local control plane for Capstan on 127.0.0.1: etcd, kube-apiserver
# v1.36.3 with the aggregation layer and kube-controller-manager, Capstan in
# aggregated mode with its own etcd over TLS, registered through APIServices.
# No kubelet or kube-proxy (see test/utils/controlplane).
#
#   hack/local-cluster.sh up      build what is missing, start, wait until Available
#   hack/local-cluster.sh status  the processes and the APIServices' conditions
#   hack/local-cluster.sh down    stop the processes `up` started (by PID)
#
# The work folder is .cluster/ in the checkout (CAPSTAN_CLUSTER_DIR overrides
# it): certificates, admin.kubeconfig, etcd data, logs/ and the state file.
# `up` starts from an empty cluster every time.
set -o errexit
set -o nounset
set -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK_DIR=${CAPSTAN_CLUSTER_DIR:-${ROOT}/.cluster}
TOOL="${ROOT}/_output/bin/local-cluster"

usage() {
    echo "usage: $0 up|down|status" >&2
    exit 2
}
[ $# -eq 1 ] || usage

case "$1" in
up)
    # kube-apiserver, kube-controller-manager and etcd are built once (minutes the first time);
    # Capstan is rebuilt so that the cluster runs the checkout's code.
    (
        cd "${ROOT}"
        hack/build-tools.sh
        make --no-print-directory build
        go build -o "${TOOL}" ./hack/local-cluster
    )
    ;;
down | status)
    if [ ! -x "${TOOL}" ]; then
        (cd "${ROOT}" && go build -o "${TOOL}" ./hack/local-cluster)
    fi
    ;;
*)
    usage
    ;;
esac
# From the caller's folder, so that the paths it prints work there.
exec "${TOOL}" --root "${ROOT}" --work-dir "${WORK_DIR}" "$1"
