"""spark_io's session-level switches (no services needed)."""

from __future__ import annotations

import pytest

from spark_jobs.spark_conf import MAGIC_COMMIT_SQL_CONF, magic_commit_options
from spark_jobs.spark_io import magic_commit


def test_magic_commit_applies_to_the_writes_inside_and_restores_the_session(spark):
    protocol, committer = MAGIC_COMMIT_SQL_CONF
    spark.conf.set(committer, "org.apache.parquet.hadoop.ParquetOutputCommitter")  # a value set before
    spark.conf.unset(protocol)  # and one left unset
    default_protocol = spark.conf.get(protocol)
    with magic_commit(spark) as options:
        assert options == magic_commit_options()  # for the writer: the Hadoop half of the setting
        assert spark.conf.get(protocol) == MAGIC_COMMIT_SQL_CONF[protocol]
        assert spark.conf.get(committer) == MAGIC_COMMIT_SQL_CONF[committer]
    assert spark.conf.get(protocol) == default_protocol
    assert spark.conf.get(committer) == "org.apache.parquet.hadoop.ParquetOutputCommitter"
    with pytest.raises(RuntimeError), magic_commit(spark):
        raise RuntimeError("a failed write")
    assert spark.conf.get(protocol) == default_protocol  # restored after a failure too
    spark.conf.unset(committer)


def test_magic_commit_options_pick_the_magic_committer_for_s3a_only():
    options = magic_commit_options()
    assert options["fs.s3a.committer.name"] == "magic"
    assert set(options) == {"fs.s3a.committer.name", "mapreduce.outputcommitter.factory.scheme.s3a"}


def test_shuffle_partitions_grow_with_the_input_and_never_drop_below_the_configured():
    from spark_jobs.spark_io import EVENTS_PER_SHUFFLE_PARTITION, shuffle_partitions_for

    assert shuffle_partitions_for(0, 4) == 4
    assert shuffle_partitions_for(6_283, 4) == 4  # a daily drop
    assert shuffle_partitions_for(885_129, 4) == 4
    assert shuffle_partitions_for(20_000_000, 4) == 34
    assert shuffle_partitions_for(4 * EVENTS_PER_SHUFFLE_PARTITION + 1, 4) == 5
    assert shuffle_partitions_for(20_000_000, 64) == 64
