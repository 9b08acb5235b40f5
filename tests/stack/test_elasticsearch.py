"""The local Elasticsearch (scripts/services/elasticsearch.sh): the features the pipeline relies on,
through the official Python client (on the admin/test endpoint ELASTICSEARCH_URL) and the Airflow
provider's hook (through the connection, i.e. the authenticating esproxy: tests/stack/test_esproxy.py)."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, date, datetime

import pytest
from elasticsearch import BadRequestError, Elasticsearch, helpers

from ecommerce_profiles.core.schemas import PROFILE_FIELDS, es_mapping

SNAPSHOT_DATE = date(2024, 1, 31)


@pytest.fixture(scope="module")
def es(stack) -> Elasticsearch:
    client = Elasticsearch(stack["elasticsearch"], request_timeout=30)
    yield client
    client.close()


@pytest.fixture()
def new_index_name(es):
    """Hands out unique index names and deletes those indices after the test."""
    created: list[str] = []

    def make(label: str) -> str:
        name = f"test_stack_{label}_{uuid.uuid4().hex[:12]}"
        created.append(name)
        return name

    yield make
    for name in created:
        es.indices.delete(index=name, ignore_unavailable=True)


def profile_doc(user_id: int, **overrides) -> dict:
    """A document with a plausible value for every profile field, derived from PROFILE_FIELDS."""
    by_type = {
        "string": "loyal",
        "int": 3,
        "long": 7,
        "double": 12.5,
        "date": SNAPSHOT_DATE.isoformat(),
        "timestamp": datetime(2024, 1, 30, 12, 0, tzinfo=UTC).isoformat(),
    }
    doc = {field.name: by_type[field.type] for field in PROFILE_FIELDS}
    # 19 digits, beyond 2^53: the mapping keeps user_id a keyword so nothing gets rounded.
    doc["user_id"] = str(user_id)
    doc.update(overrides)
    return doc


def create_profile_index(es: Elasticsearch, name: str) -> None:
    body = es_mapping()
    es.indices.create(index=name, settings=body["settings"], mappings=body["mappings"])


def test_root_endpoint_reports_the_server_version(es, project_root):
    # The Spark connector reads the version from GET /, which the integ-test-zip serves only
    # through the plugin that scripts/services/elasticsearch.sh builds.
    versions = subprocess.run(
        ["bash", str(project_root / "scripts" / "versions.sh")], check=True, capture_output=True, text=True
    ).stdout
    expected = dict(line.split("=", 1) for line in versions.splitlines())["ES_VERSION"]
    assert es.ping()
    info = es.info()
    assert info["version"]["number"] == expected
    assert info["cluster_uuid"] not in ("", "_na_")


def test_profile_index_uses_the_generated_mapping(es, new_index_name):
    index = new_index_name("profiles")
    create_profile_index(es, index)

    properties = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert {name: prop["type"] for name, prop in properties.items()} == {
        field.name: field.elasticsearch_type for field in PROFILE_FIELDS
    }
    settings = es.indices.get_settings(index=index)[index]["settings"]["index"]
    # Created for the bulk load: no periodic refresh, no fsync per request (publish restores both).
    assert settings["refresh_interval"] == "-1"
    assert settings["translog"]["durability"] == "async"


def test_indexed_profile_is_searchable_by_user_id(es, new_index_name):
    index = new_index_name("profiles")
    create_profile_index(es, index)
    user_id = 1515915625353226922  # a real-looking 19-digit id
    doc = profile_doc(user_id, rfm_segment="champions", revenue=1234.56, avg_order_value=None)

    es.index(index=index, id=doc["user_id"], document=doc, refresh=True)

    hits = es.search(index=index, query={"term": {"user_id": str(user_id)}})["hits"]
    assert hits["total"]["value"] == 1
    hit = hits["hits"][0]
    assert hit["_id"] == str(user_id)
    assert hit["_source"] == doc
    # Range query on a timestamp field: the mapping's date format parses ISO-8601 with offset.
    in_range = es.count(index=index, query={"range": {"last_seen": {"gte": "2024-01-30T00:00:00Z"}}})
    assert in_range["count"] == 1
    # Numeric metrics have doc values only (index: false) and must still be filterable.
    assert es.count(index=index, query={"range": {"revenue": {"gte": 1000}}})["count"] == 1
    assert es.count(index=index, query={"range": {"revenue": {"gt": 2000}}})["count"] == 0


def test_strict_mapping_rejects_unknown_fields(es, new_index_name):
    index = new_index_name("profiles")
    create_profile_index(es, index)
    with pytest.raises(BadRequestError) as raised:
        es.index(index=index, document=profile_doc(1, not_a_profile_field=1), refresh=True)
    assert raised.value.error == "strict_dynamic_mapping_exception"


def test_bulk_then_aggregations(es, new_index_name):
    index = new_index_name("profiles")
    create_profile_index(es, index)
    profiles = [
        profile_doc(1001, rfm_segment="champions", revenue=100.0, recency_days=2),
        profile_doc(1002, rfm_segment="champions", revenue=300.0, recency_days=8),
        profile_doc(1003, rfm_segment="at_risk", revenue=50.0, recency_days=40),
    ]
    ok, errors = helpers.bulk(
        es,
        ({"_index": index, "_id": p["user_id"], "_source": p} for p in profiles),
        refresh=True,
    )
    assert (ok, errors) == (3, [])

    result = es.search(
        index=index,
        size=0,
        aggs={
            "segments": {
                "terms": {"field": "rfm_segment"},
                "aggs": {"avg_revenue": {"avg": {"field": "revenue"}}},
            },
            "recency": {"histogram": {"field": "recency_days", "interval": 10, "min_doc_count": 1}},
        },
    )
    segments = {
        bucket["key"]: (bucket["doc_count"], bucket["avg_revenue"]["value"])
        for bucket in result["aggregations"]["segments"]["buckets"]
    }
    assert segments == {"champions": (2, 200.0), "at_risk": (1, 50.0)}
    recency = {bucket["key"]: bucket["doc_count"] for bucket in result["aggregations"]["recency"]["buckets"]}
    assert recency == {0.0: 2, 40.0: 1}


def test_airflow_hook_searches_through_the_connection(es, new_index_name):
    from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook
    from airflow.sdk import BaseHook

    index = new_index_name("hook")
    create_profile_index(es, index)
    es.index(index=index, id="42", document=profile_doc(42), refresh=True)

    # The same AIRFLOW_CONN_ELASTICSEARCH_DEFAULT (.env) that the DAG uses: the authenticating
    # endpoint (scripts/services/esproxy.sh) with the pipeline's login.
    conn = BaseHook.get_connection("elasticsearch_default")
    assert conn.login and conn.password
    hook = ElasticsearchPythonHook(
        hosts=[f"{conn.schema}://{conn.host}:{conn.port}"], es_conn_args={"basic_auth": (conn.login, conn.password)}
    )
    hits = hook.search(index=index, query={"query": {"term": {"user_id": "42"}}})
    assert [hit["_id"] for hit in hits["hits"]] == ["42"]
