#!/usr/bin/env bash
# Regenerates into a clean copy of the tree and fails on any difference, so a
# change to the types cannot land without the code generated from it.
set -o errexit
set -o nounset
set -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "${WORK}"' EXIT

cd "${ROOT}"
# The files git would commit: tracked ones plus untracked ones not ignored.
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] || continue
    mkdir -p "${WORK}/$(dirname "$f")"
    cp -p "$f" "${WORK}/$f"
done
# Reuse the generator binaries already built, if any.
if [ -d "${ROOT}/_output/bin" ]; then
    mkdir -p "${WORK}/_output" && cp -rp "${ROOT}/_output/bin" "${WORK}/_output/bin"
fi

(cd "${WORK}" && hack/update-codegen.sh >/dev/null)

if ! diff -Nur --exclude=bin "${ROOT}/pkg" "${WORK}/pkg" || ! diff -Nur "${ROOT}/api" "${WORK}/api"; then
    echo "Generated code is out of date: run 'make generate' and commit the result." >&2
    exit 1
fi
echo "Generated code is up to date."
