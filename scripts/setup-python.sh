#!/usr/bin/env bash
# Installs MLServer (Seldon's Open Inference Protocol server, which flowc did not write) with
# its scikit-learn runtime, and Triton's KServe V2 client, into a Python venv, for
# tests/mlserver_e2e.rs and tests/tritonclient_e2e.rs.
#
#   ./scripts/setup-python.sh            # prints the venv's bin dir as the last line of stdout
#   export FLOWC_MLSERVER_BIN="$(./scripts/setup-python.sh | tail -n 1)"
#
# Installs into ${FLOWC_TOOLS_DIR:-~/.cache/flowc/tools}/mlserver-venv. Idempotent: when the
# venv's marker file lists exactly the pins below it only prints the path; otherwise (first run,
# changed pins, an interrupted install) it rebuilds the venv from scratch. Wheels only (no
# compiler needed), from PyPI. Everything but the path goes to stderr. Needs python3 3.9-3.12
# with the venv module (FLOWC_PYTHON overrides the interpreter); about 45 s and 530 MB.
set -euo pipefail

# The packages the tests are about, pinned exactly so that every machine serves the same
# server with the same model code:
# * mlserver 1.7.1 and mlserver-sklearn 1.7.1: the current release; the runtime is released in
#   lockstep with the server and must have the same version. Both require Python >=3.9,<3.13.
# * scikit-learn 1.9.1: the current release; it has cp311 manylinux wheels, and mlserver-sklearn
#   does not bound it (it needs only `predict`/`predict_proba`). Pinned because the model is
#   pickled with joblib: training and serving must use the same scikit-learn.
# * tritonclient 2.73.0 with its HTTP and gRPC clients: NVIDIA's KServe V2 client, which
#   tests/tritonclient_e2e.rs points at flowc's pipeline gateway (mlserver already depends on it;
#   the extras need nothing beyond the constraints below).
REQUIREMENTS="mlserver==1.7.1
mlserver-sklearn==1.7.1
scikit-learn==1.9.1
tritonclient[http,grpc]==2.73.0"

# Everything they pull in, pinned too (pip freeze of the resolution above on Python 3.11,
# Linux x86_64): mlserver bounds almost none of its dependencies, so without these a new
# numpy, pandas, protobuf or grpcio release could change what the test runs against overnight.
# To upgrade: bump the three pins, install them into a fresh venv without this list, and paste
# that venv's `pip freeze` here.
CONSTRAINTS="aiofiles==25.1.0
aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiokafka==0.14.0
aiosignal==1.4.0
annotated-types==0.8.0
anyio==4.16.0
asgiref==3.13.0
async-timeout==5.0.1
attrs==26.1.0
brotli==1.2.1
certifi==2026.10.19.post1
click==8.5.1
cloudpickle==3.1.3
fastapi==0.115.14
frozenlist==1.8.0
gevent==26.9.0
geventhttpclient==2.6.1
googleapis-common-protos==1.76.0
greenlet==3.3.2
grpcio==1.85.3
h11==0.16.0
idna==3.20
importlib_resources==6.5.2
joblib==1.6.0
ml_dtypes==0.5.4
multidict==7.2.1
narwhals==2.29.0
numpy==2.4.6
opentelemetry-api==1.45.2
opentelemetry-exporter-otlp-common==0.66b2
opentelemetry-exporter-otlp-proto-common==1.45.2
opentelemetry-exporter-otlp-proto-grpc==1.45.2
opentelemetry-instrumentation==0.66b2
opentelemetry-instrumentation-asgi==0.66b2
opentelemetry-instrumentation-fastapi==0.66b2
opentelemetry-instrumentation-grpc==0.66b2
opentelemetry-proto==1.45.2
opentelemetry-sdk==1.45.2
opentelemetry-semantic-conventions==0.66b2
opentelemetry-util-http==0.66b2
orjson==3.13.0
packaging==26.4
pandas==3.1.1
prometheus_client==0.26.0
propcache==0.5.4
protobuf==6.33.6
py-grpc-prometheus==0.8.0
pydantic==2.14.4
pydantic-settings==2.16.3
pydantic_core==2.50.5
python-dateutil==4.0.0
python-dotenv==1.2.4
python-multipart==0.0.34
python-rapidjson==1.25
scipy==1.17.1
starlette==0.46.2
starlette_exporter==0.24.0
threadpoolctl==3.8.0
tritonclient==2.73.0
typing-inspection==0.4.5
typing_extensions==4.16.0
tzdata==2026.6
urllib3==2.8.0
uvicorn==0.54.0
uvloop==0.23.0
wrapt==2.5.2
yarl==1.25.1
zope.event==6.2
zope.interface==8.7"

TOOLS_DIR="${FLOWC_TOOLS_DIR:-$HOME/.cache/flowc/tools}"
VENV="$TOOLS_DIR/mlserver-venv"
MARKER="$VENV/.flowc-pins"
PYTHON="${FLOWC_PYTHON:-python3}"
WANT="$(printf '%s\n--\n%s\n' "$REQUIREMENTS" "$CONSTRAINTS")"

log() { echo "setup-python: $*" >&2; }

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$WANT" ] && [ -x "$VENV/bin/mlserver" ]; then
    log "already installed"
    echo "$VENV/bin"
    exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] < (3, 13)))'; then
    log "$PYTHON is $("$PYTHON" --version 2>&1); mlserver 1.7.1 needs Python 3.9-3.12 (set FLOWC_PYTHON)"
    exit 1
fi

# No marker, or other pins: start over.
start=$SECONDS
# shellcheck source=scripts/venv-lib.sh
. "$(dirname "$0")/venv-lib.sh"
venv_build "$VENV" "$PYTHON" "$REQUIREMENTS" "$CONSTRAINTS"

# Check the install: the runtime imports and the CLI runs.
"$VENV/bin/python" -c 'import mlserver, mlserver_sklearn, sklearn; print("mlserver", mlserver.__version__, "scikit-learn", sklearn.__version__)' >&2
# Apart: mlserver and tritonclient.grpc both register the `inference` protobuf package, so one
# process cannot import both (the tests never do).
"$VENV/bin/python" -c 'import tritonclient.http, tritonclient.grpc; print("tritonclient ok")' >&2
"$VENV/bin/mlserver" --version >&2

printf '%s' "$WANT" >"$MARKER"
log "installed in $((SECONDS - start)) s ($(du -sh "$VENV" | cut -f 1))"
echo "$VENV/bin"
