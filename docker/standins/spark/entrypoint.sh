#!/bin/bash
# Entry point of the Spark stand-in. The official image's entrypoint prepares Kubernetes driver
# and executor commands; Compose only ever passes a full command (spark-class ... Master/Worker),
# which is what this runs. Without a command it starts a shell.
set -euo pipefail
# An arbitrary uid (docker run --user) still gets a passwd entry-free home and a writable work dir.
export HOME=${HOME:-/opt/spark/work-dir}
if [ $# -eq 0 ]; then exec /bin/bash; fi
exec "$@"
