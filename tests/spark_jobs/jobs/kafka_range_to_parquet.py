"""Test job: copy one bounded Kafka offset range to Parquet, nothing else.

spark-submit kafka_range_to_parquet.py BOOTSTRAP TOPIC STARTING_OFFSETS_JSON ENDING_OFFSETS_JSON OUTPUT_URI
"""

import sys

from pyspark.sql import SparkSession

from spark_jobs.spark_conf import kafka_batch_options


def main(bootstrap: str, topic: str, starting: str, ending: str, output_uri: str) -> None:
    spark = SparkSession.builder.appName("test_kafka_range_to_parquet").getOrCreate()
    records = (
        spark.read.format("kafka")
        .options(**kafka_batch_options(bootstrap, topic, starting, ending))
        .load()
        .selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value", "partition", "offset")
    )
    records.write.mode("overwrite").parquet(output_uri)
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
