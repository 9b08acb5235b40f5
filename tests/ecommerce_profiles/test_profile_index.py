"""The Elasticsearch index lifecycle against the real local Elasticsearch: publish, the alias
never moving backwards, one index per date, retention, orphans of failed runs, rollback."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import helpers

from ecommerce_profiles.connections import elasticsearch_settings_from_env
from ecommerce_profiles.core.profile_index import (
    PublishError,
    create_profile_index,
    discard_unpublished_index,
    profile_indices,
    publish_profile_index,
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
