#!/usr/bin/env bash
# Installs the Apache Kafka broker that flowc's tests, benches, `flowc dev-broker --kind kafka`
# and `flowc up --broker kafka` run: the jars of `org.apache.kafka:kafka_2.13` and its runtime
# dependencies from Maven Central (scripts/kafka/pom.xml), plus a log4j 2 configuration.
#
#   ./scripts/install-kafka.sh          # prints the install directory as the last line of stdout
#   export FLOWC_KAFKA_HOME="$(./scripts/install-kafka.sh | tail -n 1)"
#
# Why 4.3.2: the newest patch release of the newest Kafka 4 line that Maven Central serves here
# with its whole runtime closure (4.4.0 had no patch release yet when this was pinned). Kafka 4
# is KRaft only (no ZooKeeper), has the KIP-848 consumer protocol and transactions v2, and it is
# what current Strimzi deployments of Seldon Core 2 run. Change it together with the pom.
#
# Installs into ${FLOWC_TOOLS_DIR:-~/.cache/flowc/tools}/kafka-$KAFKA_VERSION (beside tansu):
# libs/*.jar and config/log4j2.properties. Idempotent: when the marker file holds the hash of
# the pom and the log configuration it only prints the path, with no network and no Maven. A
# changed pin reinstalls. Everything but the path goes to stderr. Needs java (17+) and mvn; on
# Debian it installs them with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")"

KAFKA_VERSION="4.3.2"
TOOLS_DIR="${FLOWC_TOOLS_DIR:-$HOME/.cache/flowc/tools}"
DEST="$TOOLS_DIR/kafka-$KAFKA_VERSION"
MARKER="$DEST/.installed"

log() { echo "install-kafka: $*" >&2; }

want="$(cat kafka/pom.xml kafka/log4j2.properties | sha256sum | cut -d ' ' -f 1)"
if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want" ]; then
    log "already installed ($DEST)"
    echo "$DEST"
    exit 0
fi

if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    log "java or mvn missing: installing openjdk-17-jre-headless and maven with apt-get"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update >&2
    $SUDO apt-get install -y --no-install-recommends openjdk-17-jre-headless maven >&2
fi

java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
    log "Apache Kafka $KAFKA_VERSION needs Java 17 or newer (found: ${java_major:-none})"
    exit 1
fi

# Build next to the destination and rename into place, so an interrupted run never leaves a
# half-filled directory behind a marker.
mkdir -p "$TOOLS_DIR"
tmp="$(mktemp -d "$TOOLS_DIR/.kafka-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime dependencies with Maven"
mvn -q -B -Dstyle.color=never -f kafka/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >&2
if [ ! -f "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" ]; then
    log "Maven did not deliver kafka_2.13-$KAFKA_VERSION.jar"
    exit 1
fi
mkdir -p "$tmp/config"
cp kafka/log4j2.properties "$tmp/config/log4j2.properties"
# A smoke check that the jars load: the storage tool prints a random cluster id.
if ! java -cp "$tmp/libs/*" kafka.tools.StorageTool random-uuid >/dev/null 2>"$tmp/check.log"; then
    log "the installed jars do not run: $(tail -n 5 "$tmp/check.log")"
    exit 1
fi
rm -f "$tmp/check.log"
echo "$want" >"$tmp/.installed"
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
log "installed Apache Kafka $KAFKA_VERSION ($(ls "$DEST/libs" | wc -l) jars)"
echo "$DEST"
