"""The Elasticsearch index lifecycle against the real local Elasticsearch: publish, the alias
never moving backwards, one index per date, retention, orphans of failed runs, rollback, and
overlapping runs of one date (the build owns its index; the newest build of a date wins)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import helpers

from ecommerce_profiles.connections import elasticsearch_settings_from_env
from ecommerce_profiles.core.profile_index import (
    IndexStateError,
    PublishError,
    create_profile_index,
    discard_unpublished_index,
    profile_indices,
    publish_profile_index,
    reset_build_index,
    rollback_alias,
)
from ecommerce_profiles.core.schemas import ES_PROFILE_SHARDS

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def es_alias(stack):
    es = elasticsearch_settings_from_env().client()
    alias = f"test_lifecycle_{uuid.uuid4().hex[:8]}"
    yield es, alias
    for name in profile_indices(es, alias):
        es.indices.delete(index=name)


def _index_with_docs(es, alias, snapshot, n, minute):
    index = create_profile_index(es, alias, snapshot, now=T0 + timedelta(minutes=minute))
    helpers.bulk(
        es,
        ({"_index": index, "_id": str(i), "_source": {"user_id": str(i), "snapshot_date": snapshot}} for i in range(n)),
    )
    return index


def _publish(es, alias, index, n, minute, retention=3):
    return publish_profile_index(
        es, alias=alias, index=index, expected_docs=n, retention=retention, now=T0 + timedelta(minutes=minute)
    )


def _aliased(es, alias):
    return sorted(n for n, i in profile_indices(es, alias).items() if i["aliased"])


def test_publish_moves_the_alias_forward_but_never_back(es_alias):
    es, alias = es_alias
    newer = _index_with_docs(es, alias, "2020-11-17", 3, 1)
    assert _publish(es, alias, newer, 3, 2)["alias_moved"]
    older = _index_with_docs(es, alias, "2020-11-10", 2, 3)
    result = _publish(es, alias, older, 2, 4)
    assert not result["alias_moved"] and result["alias_snapshot"] == "20201117"
    assert _aliased(es, alias) == [newer]
    assert es.count(index=alias)["count"] == 3
    assert profile_indices(es, alias)[older]["published_at"], "a backfill's index is kept, published"


def test_a_count_mismatch_leaves_the_alias_where_it_was(es_alias):
    es, alias = es_alias
    first = _index_with_docs(es, alias, "2020-11-17", 3, 1)
    _publish(es, alias, first, 3, 2)
    short = _index_with_docs(es, alias, "2020-11-18", 2, 3)
    with pytest.raises(PublishError, match="holds 2 profile documents but the Spark job reported 5"):
        _publish(es, alias, short, 5, 4)
    assert _aliased(es, alias) == [first]
    assert not profile_indices(es, alias)[short]["published_at"]


def test_a_rerun_of_a_date_replaces_that_dates_index(es_alias):
    es, alias = es_alias
    first = _index_with_docs(es, alias, "2020-11-17", 3, 1)
    _publish(es, alias, first, 3, 2)
    rerun = _index_with_docs(es, alias, "2020-11-17", 3, 3)
    result = _publish(es, alias, rerun, 3, 4)
    assert result["deleted_indices"] == [first]
    assert sorted(profile_indices(es, alias)) == [rerun] == _aliased(es, alias)


def test_retention_keeps_the_newest_published_and_rollback_goes_back_one(es_alias):
    es, alias = es_alias
    names = []
    for day in range(1, 6):
        index = _index_with_docs(es, alias, f"2020-11-0{day}", day, 2 * day)
        _publish(es, alias, index, day, 2 * day + 1, retention=3)
        names.append(index)
    assert sorted(profile_indices(es, alias)) == sorted(names[-3:])
    assert rollback_alias(es, alias)["to"] == names[-2]
    assert _aliased(es, alias) == [names[-2]] and es.count(index=alias)["count"] == 4
    with pytest.raises(PublishError, match="not a published index"):
        rollback_alias(es, alias, to_index=f"{alias}-20200101-nope")


def test_a_failed_runs_index_is_discarded_but_a_published_one_never(es_alias):
    es, alias = es_alias
    published = _index_with_docs(es, alias, "2020-11-17", 1, 1)
    _publish(es, alias, published, 1, 2)
    orphan = _index_with_docs(es, alias, "2020-11-18", 1, 3)
    assert not discard_unpublished_index(es, alias, published)
    assert discard_unpublished_index(es, alias, orphan)
    assert sorted(profile_indices(es, alias)) == [published]
    assert not discard_unpublished_index(es, alias, None)


def test_publishing_restores_the_serving_settings(es_alias):
    es, alias = es_alias
    index = _index_with_docs(es, alias, "2020-11-17", 3, 1)
    assert es.indices.get_settings(index=index)[index]["settings"]["index"]["refresh_interval"] == "-1"
    assert _publish(es, alias, index, 3, 2)["replicas"] == 0
    settings = es.indices.get_settings(index=index)[index]["settings"]["index"]
    assert (settings["refresh_interval"], settings["translog"]["durability"], settings["number_of_replicas"]) == (
        "1s",
        "request",
        "0",
    )


def test_replicas_the_cluster_cannot_place_leave_the_alias_where_it_was(es_alias):
    # The local cluster has one node: a replica can never be allocated, so the index never turns green.
    es, alias = es_alias
    first = _index_with_docs(es, alias, "2020-11-17", 3, 1)
    _publish(es, alias, first, 3, 2)
    replicated = _index_with_docs(es, alias, "2020-11-18", 3, 3)
    unplaced = ES_PROFILE_SHARDS  # one replica of each primary
    with pytest.raises(
        PublishError,
        match=rf"did not get its 1 replica\(s\) within 1s: status yellow, {unplaced} "
        r"unassigned shard\(s\) on 1 node\(s\).*the alias .* was NOT moved",
    ):
        publish_profile_index(
            es,
            alias=alias,
            index=replicated,
            expected_docs=3,
            replicas=1,
            replica_wait_seconds=1,
            now=T0 + timedelta(minutes=4),
        )
    assert _aliased(es, alias) == [first]
    assert not profile_indices(es, alias)[replicated]["published_at"]


def _build(es, alias, index, n):
    """What build_profiles does: the index afresh (its creation time is the build's), then n documents."""
    reset_build_index(es, alias, index)
    helpers.bulk(es, ({"_index": index, "_id": str(i), "_source": {"user_id": str(i)}} for i in range(n)))


def test_a_publish_leaves_another_runs_unpublished_index_of_the_same_date_alone(es_alias):
    es, alias = es_alias
    first = _index_with_docs(es, alias, "2019-10-01", 2, 1)
    second = create_profile_index(es, alias, "2019-10-01", now=T0 + timedelta(minutes=2))  # its job still to come
    result = _publish(es, alias, first, 2, 3)
    assert result["deleted_indices"] == [] and second in profile_indices(es, alias)


@pytest.mark.parametrize("publish_order", ["build order", "reverse build order"])
def test_the_newest_build_of_a_date_wins_whichever_publishes_first(es_alias, publish_order):
    es, alias = es_alias
    # Both runs created their index before either job ran; the later-created one's job ran
    # first, so the other's job came second and read both batches (5 users, against 2).
    built_last = create_profile_index(es, alias, "2019-10-01", now=T0 + timedelta(minutes=1))
    built_first = create_profile_index(es, alias, "2019-10-01", now=T0 + timedelta(minutes=2))
    _build(es, alias, built_first, 2)
    _build(es, alias, built_last, 5)
    order = [built_first, built_last] if publish_order == "build order" else [built_last, built_first]
    results = {
        index: publish_profile_index(
            es, alias=alias, index=index, expected_docs=5 if index == built_last else 2, run_id=f"run-{index}"
        )
        for index in order
    }
    assert _aliased(es, alias) == [built_last] and es.count(index=alias)["count"] == 5
    assert sorted(profile_indices(es, alias)) == [built_last], "the other index is gone, none orphaned"
    assert results[built_last]["superseded_by"] is None
    if publish_order == "build order":  # the newer build replaces the older one's published index
        assert results[built_first]["alias_moved"] and results[built_last]["deleted_indices"] == [built_first]
    else:  # the older build finds the newer one served: deleted, alias untouched
        assert results[built_first]["superseded_by"] == built_last
        assert results[built_first]["superseded_by_run"] == f"run-{built_last}"
        assert not results[built_first]["alias_moved"] and results[built_first]["deleted_indices"] == [built_first]


def test_a_build_recreates_its_index_empty_and_refuses_a_published_one(es_alias):
    es, alias = es_alias
    index = _index_with_docs(es, alias, "2019-10-01", 3, 1)  # an earlier attempt's half-written load
    assert reset_build_index(es, alias, index) == "recreated"
    es.indices.refresh(index=index)
    assert es.count(index=index)["count"] == 0
    es.indices.delete(index=index)  # gone (deleted by hand, or by an old publish)
    assert reset_build_index(es, alias, index) == "created"
    helpers.bulk(es, ({"_index": index, "_id": str(i), "_source": {"user_id": str(i)}} for i in range(3)))
    _publish(es, alias, index, 3, 2)
    with pytest.raises(IndexStateError, match="already published"):
        reset_build_index(es, alias, index)
    assert es.count(index=alias)["count"] == 3


def test_publishing_an_index_that_is_gone_fails_as_a_state_error(es_alias):
    es, alias = es_alias
    index = create_profile_index(es, alias, "2019-10-01", now=T0)
    es.indices.delete(index=index)
    with pytest.raises(IndexStateError, match="does not exist"):
        _publish(es, alias, index, 0, 1)
