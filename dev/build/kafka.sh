#!/usr/bin/env bash
# Fetches the Apache Kafka broker's jars (dev/kafka/pom.xml) into "$CSVKAFKA_CACHE/kafka/libs".
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CSVKAFKA_CACHE:-$HOME/.cache/csvkafka}
libs=$CACHE/kafka/libs
stamp=$libs/.pom-$(sha256sum "$here/kafka/pom.xml" | cut -c1-16)
[ -f "$stamp" ] && exit 0
echo "fetching the Kafka broker's jars with Maven (a minute or two the first time)" >&2
rm -rf "$libs"
mvn -q -B -f "$here/kafka/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
  org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$libs"
touch "$stamp"
