#!/usr/bin/env bash
# Fetches the Apache Kafka broker (jars from Maven Central, resolved by Maven with their runtime
# dependencies) into ~/.cache/keda-rs/kafka-<version>/libs, for the tests' single-node KRaft broker
# (test_cluster::kafka::KafkaBroker). Quick no-op when the cache is complete. Prints the directory.
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
SCALA_VERSION=2.13
CACHE=${KEDA_RS_CACHE:-$HOME/.cache/keda-rs}
DEST=$CACHE/kafka-$KAFKA_VERSION

if [[ -f $DEST/complete ]]; then
  echo "$DEST"
  exit 0
fi
command -v java >/dev/null || { echo "[fetch-kafka] java (17+) is required; run hack/install-deps.sh" >&2; exit 1; }
command -v mvn >/dev/null || { echo "[fetch-kafka] mvn is required; run hack/install-deps.sh" >&2; exit 1; }

WORK=$(mktemp -d -t keda-rs-fetch-kafka.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>keda-rs</groupId>
  <artifactId>kafka-broker-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- the broker (kafka.Kafka, kafka.tools.StorageTool) -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_${SCALA_VERSION}</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <!-- the command-line tools the tests use to produce and commit offsets -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <!-- the broker logs through slf4j; without a backend it prints nothing useful -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
POM
echo "[fetch-kafka] resolving kafka $KAFKA_VERSION with Maven" >&2
mvn -q -B -f "$WORK/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$WORK/libs" >&2
rm -rf "$DEST"
mkdir -p "$DEST"
mv "$WORK/libs" "$DEST/libs"
ls "$DEST/libs" | grep -q "^kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar$" || { echo "[fetch-kafka] kafka jar missing" >&2; exit 1; }
touch "$DEST/complete"
echo "$DEST"
