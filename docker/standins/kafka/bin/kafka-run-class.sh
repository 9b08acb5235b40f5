#!/bin/bash
# Runs a Kafka class with the broker's jars, like the distribution's kafka-run-class.sh:
# KAFKA_HEAP_OPTS, KAFKA_OPTS and KAFKA_LOG4J_OPTS are honoured; tools log warnings only.
set -euo pipefail
base=/opt/kafka
heap=${KAFKA_HEAP_OPTS:--Xmx256m}
log4j=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=file:/etc/kafka/docker/log4j2.properties -Dkafka.root.logger.level=${KAFKA_TOOLS_LOG4J_LOGLEVEL:-WARN}}
# shellcheck disable=SC2086
exec "${JAVA_HOME:-/opt/java-17}/bin/java" $heap -XX:+UseG1GC -Djava.awt.headless=true $log4j ${KAFKA_OPTS:-} -cp "$base/libs/*" "$@"
