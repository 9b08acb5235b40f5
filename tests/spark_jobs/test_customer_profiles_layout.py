"""How the profile job lays out the profiles for its writers (snapshot files, Elasticsearch bulks)."""

from __future__ import annotations

import pytest

from spark_jobs.profile_output import SNAPSHOT_PARTITIONS, writer_count, writer_partitions


def part_sizes(frame) -> list[int]:
    return frame.rdd.glom().map(len).collect()


def incremental_layout(spark, carried: int, changed: int):
    """An incremental build's rows as they reach the writers: the earlier snapshot's rows in its
    two file splits, then the few changed users in four small shuffle partitions."""
    kept = spark.range(carried, numPartitions=2).withColumnRenamed("id", "user_id")
    fresh = spark.range(carried, carried + changed, numPartitions=4).withColumnRenamed("id", "user_id")
    return kept.unionByName(fresh)


def test_an_incremental_build_gives_no_writer_more_than_its_share(spark):
    profiles = incremental_layout(spark, carried=10_000, changed=80)
    sizes = part_sizes(writer_partitions(profiles, incremental=True))
    assert sum(sizes) == 10_080
    # Two task slots: the two largest parts run side by side, each about half of the rows.
    largest = sorted(sizes, reverse=True)[:2]
    assert min(largest) >= 0.45 * sum(sizes), sizes


@pytest.mark.parametrize("writers", [SNAPSHOT_PARTITIONS, 4])
def test_a_full_build_merges_its_even_aggregation_partitions_without_a_shuffle(spark, writers):
    aggregated = spark.range(10_000).withColumnRenamed("id", "user_id").repartition(8, "user_id")
    laid_out = writer_partitions(aggregated, incremental=False, writers=writers)
    sizes = part_sizes(laid_out)
    assert len(sizes) == writers and sum(sizes) == 10_000
    assert min(sizes) >= 0.8 * sum(sizes) / writers, sizes
    # Merged, not shuffled again: the aggregation's hash exchange is the plan's only shuffle.
    plan = laid_out._jdf.queryExecution().optimizedPlan().toString()
    assert plan.count("RepartitionByExpression") == 1 and f"Repartition {writers}, false" in plan, plan


def test_a_job_has_a_writer_per_task_slot_and_never_fewer_than_two():
    assert [writer_count(slots) for slots in (1, 2, 3, 16)] == [2, 2, 3, 16]
