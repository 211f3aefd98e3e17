#!/usr/bin/env bash
# Builds (once) and runs the Kafka Streams side of `cargo bench --bench kstreams` (issue 17).
#
#   benches/kstreams/run.sh build          # prints the install directory as the last line
#   benches/kstreams/run.sh run ARGS...    # runs flowc.bench.KStreamsBench ARGS (exec java)
#
# The build resolves pom.xml's runtime dependencies with Maven (dependency:copy-dependencies,
# the plugin scripts/install-kafka.sh uses too), generates the protobuf classes from
# runtime/oip/proto/inference.proto with protoc, compiles with javac and jars the classes. It
# installs into ${FLOWC_TOOLS_DIR:-~/.cache/flowc/tools}/kstreams-bench (libs/*.jar,
# kstreams-bench.jar); a marker holds the hash of the pom, the Java sources and the proto, so a
# second run needs no network, no Maven and no compiler. Everything but the path goes to
# stderr. Needs java and javac (17+), mvn and protoc; on Debian it installs them with apt-get
# when they are missing. The JVM runs with -Xmx512m (FLOWC_KSTREAMS_HEAP overrides it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
TOOLS_DIR="${FLOWC_TOOLS_DIR:-$HOME/.cache/flowc/tools}"
DEST="$TOOLS_DIR/kstreams-bench"
MARKER="$DEST/.installed"
PROTO="$root/runtime/oip/proto/inference.proto"

log() { echo "kstreams: $*" >&2; }

want() {
    (cd "$here" && cat pom.xml $(find src -name '*.java' | sort) "$PROTO") | sha256sum | cut -d ' ' -f 1
}

build() {
    local hash
    hash="$(want)"
    if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$hash" ]; then
        log "already built ($DEST)"
        echo "$DEST"
        return 0
    fi
    if ! command -v javac >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1 || ! command -v protoc >/dev/null 2>&1; then
        log "javac, mvn or protoc missing: installing openjdk-17-jdk-headless, maven and protobuf-compiler with apt-get"
        local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update >&2
        $SUDO apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven protobuf-compiler >&2
    fi
    # protobuf-java in pom.xml must match protoc's generated code.
    local protoc_version
    protoc_version="$(protoc --version | awk '{print $2}')"
    if ! grep -q "<version>$protoc_version</version>" "$here/pom.xml"; then
        log "warning: protoc is $protoc_version but pom.xml pins another protobuf-java; the build may fail"
    fi
    mkdir -p "$TOOLS_DIR"
    local tmp
    tmp="$(mktemp -d "$TOOLS_DIR/.kstreams-build.XXXXXX")"
    trap 'rm -rf "$tmp"' RETURN
    log "resolving kafka-streams and protobuf-java with Maven"
    mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >&2
    mkdir -p "$tmp/gen" "$tmp/classes"
    protoc --proto_path="$(dirname "$PROTO")" --java_out="$tmp/gen" "$PROTO"
    log "compiling"
    javac -nowarn -encoding UTF-8 --release 17 -cp "$tmp/libs/*" -d "$tmp/classes" \
        $(find "$tmp/gen" "$here/src/main/java" -name '*.java') >&2
    jar cf "$tmp/kstreams-bench.jar" -C "$tmp/classes" .
    rm -rf "$tmp/gen" "$tmp/classes"
    echo "$hash" > "$tmp/.installed"
    rm -rf "$DEST"
    mv "$tmp" "$DEST"
    log "built $DEST"
    echo "$DEST"
}

case "${1:-build}" in
    build) build ;;
    run)
        shift
        dir="$(build | tail -n 1)"
        exec java "-Xmx${FLOWC_KSTREAMS_HEAP:-512m}" \
            -Dorg.slf4j.simpleLogger.defaultLogLevel="${FLOWC_KSTREAMS_LOG:-warn}" \
            -cp "$dir/kstreams-bench.jar:$dir/libs/*" flowc.bench.KStreamsBench "$@"
        ;;
    *) echo "usage: $0 build | run ARGS..." >&2; exit 2 ;;
esac
