#!/bin/bash
# As in the Kafka distribution: kafka.Kafka.
exec "$(dirname "$0")/kafka-run-class.sh" kafka.Kafka "$@"
