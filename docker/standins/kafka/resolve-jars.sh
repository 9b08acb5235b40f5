#!/bin/bash
# Resolves the Kafka broker and its command-line tools with their runtime dependencies from Maven
# Central into a folder of jars (the libs/ of Kafka's binary distribution), plus the SLF4J
# binding for log4j 2 at the log4j version Kafka itself resolved (as the distribution ships it).
# Usage: resolve-jars.sh <kafka version> <output folder>
set -euo pipefail
version=$1 out=$2
work=$(mktemp -d)
pom() {
  local deps="" coordinate group artifact v
  for coordinate in "$@"; do
    IFS=: read -r group artifact v <<<"$coordinate"
    deps+="<dependency><groupId>$group</groupId><artifactId>$artifact</artifactId><version>$v</version></dependency>"
  done
  printf '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion><groupId>standin</groupId><artifactId>kafka-libs</artifactId><version>1</version><packaging>pom</packaging><dependencies>%s</dependencies></project>\n' "$deps" >"$work/pom.xml"
}
copy() { mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out"; }
pom "org.apache.kafka:kafka_2.13:$version" "org.apache.kafka:kafka-tools:$version"
copy
log4j=$(basename "$(ls "$out"/log4j-core-*.jar | head -n 1)" .jar)
log4j=${log4j#log4j-core-}
pom "org.apache.logging.log4j:log4j-slf4j-impl:$log4j"
copy
rm -rf "$work"
echo "resolve-jars: $(ls "$out" | wc -l) jars for Kafka $version (log4j $log4j)"
