"""Spark settings the jobs apply themselves: Kafka batch ranges, the S3A magic committer for one
write, the Elasticsearch writer's options.

Plain functions of plain values; nothing here imports Airflow or pyspark. What spark-submit
needs before the job starts (jars, s3a endpoint and keys, JVM flags) is the submit side's:
``ecommerce_profiles.spark_submit_conf`` in plugins/.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlsplit

# Kafka offset sentinels in Spark's per-partition offsets JSON.
EARLIEST = -2
LATEST = -1


# The S3A magic committer (Hadoop's hadoop-aws, bound to Spark by spark-hadoop-cloud): each task
# uploads its files straight to their final keys as multipart uploads and the job commit
# completes them, so no COPY + DELETE per file and no directory markers per partition.
# bench/committers.py, a first write of 150 date partitions: 4,544 -> 1,753 S3 requests, half
# the MinIO CPU, a few seconds less on most runs. Set for one write only (spark_io.magic_commit):
# these two are SQL confs read when a write starts, the Hadoop options below go on that writer.
MAGIC_COMMIT_SQL_CONF = {
    "spark.sql.sources.commitProtocolClass": "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol",
    "spark.sql.parquet.output.committer.class": "org.apache.spark.internal.io.cloud.BindingParquetOutputCommitter",
}
# The folder the magic committer keeps its pending-upload records in, under the output path.
MAGIC_FOLDER = "__magic"


def magic_commit_options() -> dict[str, str]:
    """Hadoop settings for one DataFrameWriter (its options reach the write's Hadoop conf)."""
    return {
        "fs.s3a.committer.name": "magic",
        "mapreduce.outputcommitter.factory.scheme.s3a": "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory",
    }


def es_write_options(
    es_nodes: str,
    index: str,
    id_field: str = "user_id",
    user: str | None = None,
    password: str | None = None,
) -> dict[str, str]:
    """Options for ``DataFrame.write.format("es")`` into an index that already has its mapping.

    ``es_nodes`` is a URL such as ``http://localhost:9200``.
    """
    url = urlsplit(es_nodes if "://" in es_nodes else f"http://{es_nodes}")
    options = {
        "es.resource": index,
        "es.nodes": url.hostname or "localhost",
        "es.port": str(url.port or (443 if url.scheme == "https" else 9200)),
        "es.net.ssl": "true" if url.scheme == "https" else "false",
        # Talk only to the given address: the published node addresses of a Docker or
        # single-node cluster are not reachable from the Spark driver.
        "es.nodes.wan.only": "true",
        # The index and its strict mapping are created beforehand; never let the connector
        # invent a dynamic mapping.
        "es.index.auto.create": "false",
        "es.mapping.id": id_field,
        # index = create or replace by _id: a rerun rewrites the same documents.
        "es.write.operation": "index",
        # Each task sends bulks of up to 5000 docs / 5 MB (defaults 1000 / 1 MB): fewer round
        # trips for ~1 kB profile documents, well inside a 1 GB heap. At 407k documents 10,000 /
        # 10 MB bulks and a never-merging policy gained nothing; es.input.json was slower (28 vs 22 s).
        "es.batch.size.entries": "5000",
        "es.batch.size.bytes": "5mb",
        "es.batch.write.retry.count": "3",
        "es.batch.write.retry.wait": "10s",
        # No refresh from the writer: the index is loaded unrefreshed and publishing it refreshes
        # it once before counting and moving the alias (profile_index.publish_profile_index); a
        # refresh per writer task would only be repeated work.
        "es.batch.write.refresh": "false",
        # Keep nullable fields as explicit nulls: each document has every profile field.
        "es.spark.dataframe.write.null": "true",
    }
    if user:
        options["es.net.http.auth.user"] = user
        options["es.net.http.auth.pass"] = password or ""
    return options


def offsets_json(topic: str, offsets: Mapping[int, int]) -> str:
    """Spark's per-partition offsets JSON: ``{"topic": {"0": 42, "1": -2}}``."""
    return json.dumps({topic: {str(partition): int(offset) for partition, offset in sorted(offsets.items())}})


def records_in_range(starting_offsets: str, ending_offsets: str) -> int | None:
    """Records in a bounded offset range (Spark's per-partition JSON), or None when either end
    has a sentinel (earliest/latest) or they name different partitions."""
    starting, ending = json.loads(starting_offsets), json.loads(ending_offsets)
    if starting.keys() != ending.keys():
        return None
    total = 0
    for topic, partitions in ending.items():
        if partitions.keys() != starting[topic].keys():
            return None
        for partition, end in partitions.items():
            start = starting[topic][partition]
            if start < 0 or end < 0:
                return None
            total += end - start
    return total


def kafka_batch_options(
    bootstrap_servers: str,
    topic: str,
    starting_offsets: str,
    ending_offsets: str,
) -> dict[str, str]:
    """Options for ``spark.read.format("kafka")``: a bounded batch [starting, ending) per partition."""
    return {
        "kafka.bootstrap.servers": bootstrap_servers,
        "subscribe": topic,
        "startingOffsets": starting_offsets,
        "endingOffsets": ending_offsets,
        # Offsets already deleted by retention must fail the run: archiving a partial range
        # would overwrite a complete event_date partition with fewer events.
        "failOnDataLoss": "true",
    }
