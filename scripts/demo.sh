#!/usr/bin/env bash
# make demo [DATA=path.csv]: run the DAG end to end with `airflow dags test` on a one-shot file.
# Without DATA it uses data/electronics.csv or data/events.csv (the Kaggle file) when present,
# else generates a sample of the same shape. The local stack stays up afterwards.
set -euo pipefail
data="${1:-}"
if [ -z "$data" ]; then
  for candidate in data/electronics.csv data/events.csv; do
    [ -f "$PROJECT_ROOT/$candidate" ] && { data="$candidate"; break; }
  done
fi
if [ -z "$data" ]; then
  data="data/sample/electronics_sample.csv"
  if [ ! -f "$PROJECT_ROOT/$data" ]; then
    echo "No dataset found (data/electronics.csv or data/events.csv): generating a 200,000-event sample"
    python "$PROJECT_ROOT/scripts/generate_events.py" --events 200000 --bad-rows 5 --out "$PROJECT_ROOT/$data"
  fi
fi
[ -f "$data" ] || [ -f "$PROJECT_ROOT/$data" ] || { echo "DATA file not found: $data" >&2; exit 1; }
bash "$PROJECT_ROOT/scripts/airflow_db.sh"
run_date=$(date -u +%Y-%m-%d)
echo "Running ecommerce_customer_profiles on $data (airflow dags test, logical date $run_date)"
log="$STACK_LOG_DIR/demo-dags-test.log"
mkdir -p "$STACK_LOG_DIR"
airflow dags test ecommerce_customer_profiles "$run_date" -c "{\"input_path\": \"$data\"}" 2>&1 | tee "$log" \
  | grep --line-buffered -E "Marking task as|ERROR|Customer profiles as of|rows read|Elasticsearch: index|Lake: |Quarantine: |Kibana: " || true
if grep -q "Customer profiles as of" "$log"; then
  echo
  echo "Demo done. Look at: Elasticsearch $ELASTICSEARCH_URL/$ELASTICSEARCH_INDEX/_search, MinIO console http://localhost:$MINIO_CONSOLE_PORT (bucket $MINIO_BUCKET)."
  echo "Full log: $log. Stop the stack with: make stack-down"
else
  echo "The DAG run did not finish; see $log" >&2
  exit 1
fi
