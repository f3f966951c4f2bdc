#!/usr/bin/env bash
# Writes what the example overlay turns into Secrets: a CA and Capstan's
# serving certificate (capstan.capstan-system.svc), a separate etcd CA with
# etcd's server, peer and client certificates, and an EncryptionConfiguration
# with a fresh random key.
#
#   generate-secrets.sh [--encryption-only] [DIR]
#
# DIR defaults to the secrets/ folder next to this script. Files that already
# exist are kept, never overwritten: above all the encryption key, without
# which nothing Capstan stored can be read back. Delete a file to make it
# anew. Needs openssl (1.1.1 or 3.x).
set -o errexit
set -o nounset
set -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ARTIFACTS=$(cd "${HERE}/../.." && pwd)

certs=true
if [ "${1:-}" = "--encryption-only" ]; then
    certs=false
    shift
fi
DIR=${1:-${HERE}/secrets}
NAMESPACE=capstan-system
# Leaf certificates: renew well before this, e.g. with cert-manager.
LEAF_DAYS=${LEAF_DAYS:-365}
CA_DAYS=${CA_DAYS:-3650}

command -v openssl >/dev/null || { echo "generate-secrets.sh needs openssl" >&2; exit 1; }
mkdir -p "${DIR}"
chmod 0700 "${DIR}"
umask 077

# ca NAME CN: a self-signed CA, NAME.crt and NAME.key.
ca() {
    local name=$1 cn=$2
    if [ -s "${DIR}/${name}.crt" ] && [ -s "${DIR}/${name}.key" ]; then
        echo "keeping ${DIR}/${name}.crt"
        return
    fi
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "${DIR}/${name}.key" -out "${DIR}/${name}.crt" -days "${CA_DAYS}" \
        -subj "/CN=${cn}" -config /dev/stdin -extensions v3_ca <<EOF
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
EOF
    echo "wrote ${DIR}/${name}.crt"
}

# leaf NAME CA CN USAGES [SAN]: NAME.crt and NAME.key signed by CA.
leaf() {
    local name=$1 ca=$2 cn=$3 usages=$4 san=${5:-}
    if [ -s "${DIR}/${name}.crt" ] && [ -s "${DIR}/${name}.key" ]; then
        echo "keeping ${DIR}/${name}.crt"
        return
    fi
    local ext="${DIR}/${name}.ext"
    {
        echo "basicConstraints = critical,CA:FALSE"
        echo "keyUsage = critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage = ${usages}"
        echo "authorityKeyIdentifier = keyid"
        if [ -n "${san}" ]; then
            echo "subjectAltName = ${san}"
        fi
    } >"${ext}"
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "${DIR}/${name}.key" -out "${DIR}/${name}.csr" -subj "/CN=${cn}" \
        -config /dev/stdin <<EOF
[req]
distinguished_name = dn
[dn]
EOF
    openssl x509 -req -in "${DIR}/${name}.csr" -CA "${DIR}/${ca}.crt" -CAkey "${DIR}/${ca}.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "${LEAF_DAYS}" \
        -extfile "${ext}" -out "${DIR}/${name}.crt" 2>/dev/null
    rm -f "${DIR}/${name}.csr" "${ext}"
    echo "wrote ${DIR}/${name}.crt"
}

if ${certs}; then
    # Capstan's serving certificate: kube-apiserver's aggregator checks the
    # name <service>.<namespace>.svc against the APIService caBundle (ca.crt).
    ca ca capstan-ca
    leaf serving ca "capstan.${NAMESPACE}.svc" serverAuth \
        "DNS:capstan.${NAMESPACE}.svc,DNS:capstan.${NAMESPACE}.svc.cluster.local"

    # etcd has its own CA: nothing kube-apiserver trusts can open etcd.
    members="DNS:*.capstan-etcd.${NAMESPACE}.svc,DNS:*.capstan-etcd.${NAMESPACE}.svc.cluster.local"
    ca etcd-ca capstan-etcd-ca
    # The server certificate is also a client one: etcd's gRPC gateway dials
    # the member itself with it. localhost is for etcdctl inside the pod.
    leaf etcd-server etcd-ca capstan-etcd serverAuth,clientAuth \
        "${members},DNS:capstan-etcd.${NAMESPACE}.svc,DNS:localhost,IP:127.0.0.1"
    leaf etcd-peer etcd-ca capstan-etcd-peer serverAuth,clientAuth "${members}"
    leaf etcd-client etcd-ca capstan-apiserver clientAuth
fi

config="${DIR}/encryption-config.yaml"
if [ -s "${config}" ]; then
    echo "keeping ${config}"
else
    key=$(openssl rand -base64 32)
    sed "s|REPLACE-WITH-32-RANDOM-BYTES-IN-BASE64|${key}|" \
        "${ARTIFACTS}/encryption/encryption-config.yaml" >"${config}"
    echo "wrote ${config}: keep a copy of it outside the cluster"
fi
