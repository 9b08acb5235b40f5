#!/usr/bin/env bash
# make demo [DATA=path.csv]: run the DAG end to end with `airflow dags test` on a one-shot file.
# Without DATA it uses data/electronics.csv or data/events.csv (the Kaggle file) when present,
# else generates a sample of the same shape. The DAG reads inputs only from the data directory
# ($PIPELINE_DATA_DIR): a DATA file elsewhere is copied into it first. The stack stays up.
set -euo pipefail
data_root=$(cd "$PIPELINE_DATA_DIR" 2>/dev/null && pwd -P || { mkdir -p "$PIPELINE_DATA_DIR" && cd "$PIPELINE_DATA_DIR" && pwd -P; })
data="${1:-}"
if [ -z "$data" ]; then
  for candidate in electronics.csv events.csv; do
    [ -f "$data_root/$candidate" ] && { data="$data_root/$candidate"; break; }
  done
fi
if [ -z "$data" ]; then
  data="$data_root/sample/electronics_sample.csv"
  if [ ! -f "$data" ]; then
    echo "No dataset found (data/electronics.csv or data/events.csv): generating a 200,000-event sample"
    (cd "$PROJECT_ROOT" && python -m bench.generate_events --events 200000 --bad-rows 5 --out "$data")
  fi
fi
[ -f "$data" ] || { echo "DATA file not found: $data" >&2; exit 1; }
data=$(cd "$(dirname "$data")" && pwd -P)/$(basename "$data")
case "$data" in
  "$data_root"/*) ;;
  *) mkdir -p "$data_root/one-shot"
     echo "Copying $data into the data directory ($data_root/one-shot/): the DAG reads inputs only from there"
     cp "$data" "$data_root/one-shot/$(basename "$data")"
     data="$data_root/one-shot/$(basename "$data")" ;;
esac
input_path=${data#"$data_root"/}
bash "$PROJECT_ROOT/scripts/airflow_db.sh"
run_date=$(date -u +%Y-%m-%d)
echo "Running ecommerce_customer_profiles on $input_path (airflow dags test, logical date $run_date)"
log="$STACK_LOG_DIR/demo-dags-test.log"
mkdir -p "$STACK_LOG_DIR"
airflow dags test ecommerce_customer_profiles "$run_date" -c "{\"input_path\": \"$input_path\"}" 2>&1 | tee "$log" \
  | grep --line-buffered -E "Marking task as|ERROR|Customer profiles as of|rows read|Elasticsearch: index|Lake: |Evidence: |Kibana: " || true
if grep -q "Customer profiles as of" "$log"; then
  echo
  echo "Demo done. Look at: Elasticsearch $ELASTICSEARCH_URL/$ELASTICSEARCH_INDEX/_search, MinIO console http://localhost:$MINIO_CONSOLE_PORT (bucket $MINIO_BUCKET)."
  echo "Full log: $log. Stop the stack with: make stack-down"
else
  echo "The DAG run did not finish; see $log" >&2
  exit 1
fi
