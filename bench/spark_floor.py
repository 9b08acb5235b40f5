"""The fixed cost of any Spark job the DAG submits: start a session with the job's conf, count
the run's Kafka records, stop. No archive, no profiles, no Elasticsearch.

``bench.stages.stage_spark_floor`` spark-submits this file exactly as it submits the profile
job (same jars, conf, master); its wall time is the floor under the job's, whatever the job does.
Prints one JSON line: {"records", "startup_s", "kafka_count_s"}.
"""

from __future__ import annotations

import argparse
import json
import time

from pyspark.sql import SparkSession

# The job's own measure of start-up, so the floor's and the job's figures compare.
from spark_jobs.customer_profiles import jvm_started_epoch_seconds
from spark_jobs.spark_conf import kafka_batch_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--starting-offsets", required=True)
    parser.add_argument("--ending-offsets", required=True)
    args = parser.parse_args()
    spark = SparkSession.builder.appName("spark_floor").getOrCreate()
    ready = time.time()
    records = (
        spark.read.format("kafka")
        .options(**kafka_batch_options(args.bootstrap_servers, args.topic, args.starting_offsets, args.ending_offsets))
        .load()
        .count()
    )
    print(
        json.dumps(
            {
                "records": records,
                "startup_s": round(ready - jvm_started_epoch_seconds(spark), 3),
                "kafka_count_s": round(time.time() - ready, 3),
            }
        ),
        flush=True,
    )
    spark.stop()


if __name__ == "__main__":
    main()
