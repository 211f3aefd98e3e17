#!/usr/bin/env bash
# Installs the system packages that building flowc needs on a fresh Debian/Ubuntu machine.
#
#   - libclang: rocksdb's `librocksdb-sys` runs bindgen at build time, which loads libclang.
#   - protoc:   `tonic-prost-build` compiles runtime/oip/proto/*.proto with the system protoc.
#
# gcc/g++, make and libssl-dev are assumed present. cmake is deliberately not needed:
# librocksdb-sys builds its C++ with the `cc` crate.
#
# Idempotent: does nothing (not even `apt-get update`) when everything is already there.
set -euo pipefail

have_protoc() { command -v protoc >/dev/null 2>&1; }

have_libclang() {
    # bindgen (clang-sys) looks for libclang.so or libclang-<N>.so (libclang-cpp is not it).
    if [ -n "${LIBCLANG_PATH:-}" ] && ls "${LIBCLANG_PATH}"/libclang*.so* 2>/dev/null | grep -qv 'libclang-cpp'; then
        return 0
    fi
    local found
    found=$(find /usr/lib /usr/local/lib /usr/lib64 -name 'libclang*.so*' 2>/dev/null | grep -v 'libclang-cpp' | head -n 1 || true)
    [ -n "$found" ]
}

missing=()
have_protoc || missing+=(protobuf-compiler)
have_libclang || missing+=(libclang-dev)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup-build-deps: protoc and libclang already present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "setup-build-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"

have_protoc || { echo "setup-build-deps: protoc still missing" >&2; exit 1; }
have_libclang || { echo "setup-build-deps: libclang still missing" >&2; exit 1; }
echo "setup-build-deps: done"
