#!/usr/bin/env bash
# Resolve the Spark connector jars (Kafka source, S3A filesystem, Elasticsearch sink) from Maven
# Central into $SPARK_JARS_DIR, so that every spark-submit gets them with --jars and nothing is
# downloaded at run time (no --packages, no Ivy).
#
# Only the jars that pyspark does not already bundle are kept: a second copy of a class under a
# different version (scala-library, spark-core 3.4.3 from the Elasticsearch pom, hadoop-client,
# lz4, snappy, slf4j...) would make class loading order decide which one wins.
#
# Idempotent: $SPARK_JARS_DIR/.manifest records a fingerprint of the generated pom (versions,
# exclusions) and each jar's size; when both still match, the script exits at once.
# SHA256SUMS beside the jars lets `--verify` check their content too (about 2 s).
#
# Usage: scripts/spark_jars.sh [--force | --verify]
# Env:   SPARK_JARS_DIR (from .env), SPARK_BUNDLED_JARS_DIR (default: the venv's pyspark/jars, else
#        $SPARK_HOME/jars), MAVEN_REPO_LOCAL (default: $CACHE_DIR/m2).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# As with stack.sh, a SPARK_JARS_DIR exported by the caller wins over .env.
caller_jars_dir=${SPARK_JARS_DIR:-}
# shellcheck disable=SC1091
source "$here/env.sh"
if [ -n "$caller_jars_dir" ]; then
  case "$caller_jars_dir" in /*) SPARK_JARS_DIR=$caller_jars_dir ;; *) SPARK_JARS_DIR="$PWD/$caller_jars_dir" ;; esac
fi
eval "$("$here/versions.sh")"

mode=${1:-}
case "$mode" in ""|--force|--verify) ;; *) echo "usage: $0 [--force | --verify]" >&2; exit 2 ;; esac

log() { echo "[spark_jars] $*" >&2; }

bundled_jars_dir() {
  if [ -n "${SPARK_BUNDLED_JARS_DIR:-}" ]; then
    echo "$SPARK_BUNDLED_JARS_DIR"
  elif compgen -G "$VENV/lib/python*/site-packages/pyspark/jars" >/dev/null; then
    compgen -G "$VENV/lib/python*/site-packages/pyspark/jars" | head -1
  elif [ -n "${SPARK_HOME:-}" ] && [ -d "$SPARK_HOME/jars" ]; then
    echo "$SPARK_HOME/jars"
  else
    log "cannot find Spark's bundled jars: install the venv (pyspark) or set SPARK_BUNDLED_JARS_DIR"
    exit 1
  fi
}

BUNDLED_DIR=$(bundled_jars_dir)
[ -d "$BUNDLED_DIR" ] || { log "no such directory: $BUNDLED_DIR"; exit 1; }
# Check the bundled Spark really is the one docs/versions.md names (hadoop-aws must match exactly).
[ -e "$BUNDLED_DIR/spark-core_${SCALA_BINARY_VERSION}-${SPARK_VERSION}.jar" ] || {
  log "$BUNDLED_DIR has no spark-core_${SCALA_BINARY_VERSION}-${SPARK_VERSION}.jar: Spark version mismatch"; exit 1; }
[ -e "$BUNDLED_DIR/hadoop-client-api-${HADOOP_AWS_VERSION}.jar" ] || {
  log "$BUNDLED_DIR has no hadoop-client-api-${HADOOP_AWS_VERSION}.jar: hadoop-aws must equal Spark's Hadoop"; exit 1; }

# artifactIds of the bundled jars: "jackson-module-scala_2.12-2.15.2.jar" -> "jackson-module-scala_2.12"
bundled_artifact_ids=$(find "$BUNDLED_DIR" -maxdepth 1 -name '*.jar' -printf '%f\n' \
  | sed -E 's/-[0-9][^-]*(-.*)?\.jar$//' | sort -u | paste -sd, -)

# Exclusions that must happen in the pom, before resolution:
#  * elasticsearch-spark-30's published pom lists two build-internal modules
#    (elasticsearch-hadoop-mr, elasticsearch-spark_2.12) that are not on Maven Central (their
#    classes are inside the connector jar), plus Spark 3.4.3 and Scala that pyspark provides;
#  * javax.xml.bind:jaxb-api duplicates pyspark's jakarta.xml.bind-api (same javax.xml.bind classes);
#  * spark-sql-kafka drags hadoop-client-runtime/api, already in pyspark.
POM=$(cat <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.ecommerce</groupId>
  <artifactId>spark-connector-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.spark</groupId>
      <artifactId>spark-sql-kafka-0-10_${SCALA_BINARY_VERSION}</artifactId>
      <version>${SPARK_SQL_KAFKA_VERSION}</version>
      <exclusions>
        <exclusion><groupId>org.apache.hadoop</groupId><artifactId>*</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <!-- Binds Hadoop's S3A magic committer to Spark's writers (PathOutputCommitProtocol);
           the one class jar only: its cloud connectors (Azure, GCS, ...) are not wanted. -->
      <groupId>org.apache.spark</groupId>
      <artifactId>spark-hadoop-cloud_${SCALA_BINARY_VERSION}</artifactId>
      <version>${SPARK_VERSION}</version>
      <exclusions>
        <exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.hadoop</groupId>
      <artifactId>hadoop-aws</artifactId>
      <version>${HADOOP_AWS_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>com.amazonaws</groupId>
      <artifactId>aws-java-sdk-bundle</artifactId>
      <version>${AWS_SDK_BUNDLE_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.elasticsearch</groupId>
      <artifactId>elasticsearch-spark-30_${SCALA_BINARY_VERSION}</artifactId>
      <version>${ES_SPARK_VERSION}</version>
      <exclusions>
        <exclusion><groupId>org.elasticsearch</groupId><artifactId>elasticsearch-hadoop-mr</artifactId></exclusion>
        <exclusion><groupId>org.elasticsearch</groupId><artifactId>elasticsearch-spark_${SCALA_BINARY_VERSION}</artifactId></exclusion>
        <exclusion><groupId>org.apache.spark</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>org.scala-lang</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>javax.xml.bind</groupId><artifactId>jaxb-api</artifactId></exclusion>
      </exclusions>
    </dependency>
  </dependencies>
</project>
EOF
)

fingerprint=$(printf '%s\n%s\n' "$POM" "$bundled_artifact_ids" | sha256sum | cut -d' ' -f1)
manifest="$SPARK_JARS_DIR/.manifest"

jar_sizes() { (cd "$1" && find . -maxdepth 1 -name '*.jar' -printf '%s %f\n' | sort -k2); }

if [ "$mode" != "--force" ] && [ -f "$manifest" ] \
   && [ "$(cat "$manifest")" = "$(printf 'fingerprint %s\n%s' "$fingerprint" "$(jar_sizes "$SPARK_JARS_DIR")")" ]; then
  if [ "$mode" = "--verify" ]; then
    (cd "$SPARK_JARS_DIR" && sha256sum -c --quiet SHA256SUMS) || { log "checksum mismatch: rerun with --force"; exit 1; }
  fi
  log "up to date: $(grep -c '\.jar$' "$manifest") jars in $SPARK_JARS_DIR"
  exit 0
fi

command -v mvn >/dev/null || { log "mvn not found (apt-get install maven)"; exit 1; }
MAVEN_REPO_LOCAL=${MAVEN_REPO_LOCAL:-$CACHE_DIR/m2}
# Pin the plugin when docs/versions.md names it; otherwise Maven picks the newest release.
if [ -n "${MAVEN_DEPENDENCY_PLUGIN_VERSION:-}" ]; then
  plugin="org.apache.maven.plugins:maven-dependency-plugin:${MAVEN_DEPENDENCY_PLUGIN_VERSION}"
else
  plugin="dependency"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/spark-jars.XXXXXX")
staging="$SPARK_JARS_DIR.staging"
trap 'rm -rf "$work" "$staging"' EXIT
printf '%s\n' "$POM" > "$work/pom.xml"
rm -rf "$staging"
mkdir -p "$staging" "$(dirname "$SPARK_JARS_DIR")"

started=$(date +%s)
log "resolving connector jars from Maven Central (bundled Spark jars: $BUNDLED_DIR)"
if ! mvn -B -q -f "$work/pom.xml" -Dmaven.repo.local="$MAVEN_REPO_LOCAL" \
      "$plugin:copy-dependencies" -DincludeScope=runtime -DoutputDirectory="$staging" \
      -DexcludeArtifactIds="$bundled_artifact_ids" >"$work/mvn.log" 2>&1; then
  cat "$work/mvn.log" >&2
  log "maven resolution failed"
  exit 1
fi

# Every connector named in docs/versions.md must be there, at its exact version.
for expected in \
  "spark-sql-kafka-0-10_${SCALA_BINARY_VERSION}-${SPARK_SQL_KAFKA_VERSION}.jar" \
  "spark-hadoop-cloud_${SCALA_BINARY_VERSION}-${SPARK_VERSION}.jar" \
  "hadoop-aws-${HADOOP_AWS_VERSION}.jar" \
  "aws-java-sdk-bundle-${AWS_SDK_BUNDLE_VERSION}.jar" \
  "elasticsearch-spark-30_${SCALA_BINARY_VERSION}-${ES_SPARK_VERSION}.jar"; do
  [ -s "$staging/$expected" ] || { log "missing after resolution: $expected"; exit 1; }
done

(cd "$staging" && sha256sum -- *.jar > SHA256SUMS)
printf 'fingerprint %s\n%s' "$fingerprint" "$(jar_sizes "$staging")" > "$staging/.manifest"

rm -rf "$SPARK_JARS_DIR"
mv "$staging" "$SPARK_JARS_DIR"
log "resolved in $(( $(date +%s) - started ))s into $SPARK_JARS_DIR:"
(cd "$SPARK_JARS_DIR" && du -h -- *.jar) >&2
