"""include/kibana/customer_profiles.ndjson: well-formed, self-consistent, and built on the profile schema."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from ecommerce_profiles.core.schemas import PROFILE_COLUMNS, es_mapping
from tests.support.kibana_objects import NDJSON_PATH, build, render

AGGREGATABLE_ES_TYPES = {
    "keyword",
    "integer",
    "long",
    "short",
    "byte",
    "double",
    "float",
    "half_float",
    "scaled_float",
    "date",
    "boolean",
    "ip",
}
NUMERIC_ES_TYPES = {"integer", "long", "short", "byte", "double", "float", "half_float", "scaled_float"}
METRIC_OPERATIONS = {"sum", "average", "min", "max", "median", "standard_deviation", "percentile"}
LENS_RECORDS = "___records___"


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return [line for line in NDJSON_PATH.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def objects(lines) -> list[dict]:
    return [json.loads(line) for line in lines]


def of_type(objects: list[dict], type_: str) -> list[dict]:
    return [o for o in objects if o["type"] == type_]


def lens_columns(objects: list[dict]):
    for chart in of_type(objects, "lens"):
        for layer_id, layer in chart["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].items():
            for column_id, column in layer["columns"].items():
                yield chart, layer_id, column_id, column


def test_file_is_generated_from_the_builder():
    assert NDJSON_PATH.read_text() == render(build()), (
        "customer_profiles.ndjson is stale: run `python -m tests.support.kibana_objects`"
    )


def test_every_line_is_a_saved_object(lines):
    for number, line in enumerate(lines, start=1):
        obj = json.loads(line)
        assert isinstance(obj, dict), f"line {number}"
        assert {"type", "id", "attributes", "references"} <= obj.keys(), f"line {number}"
        assert obj["type"] in {"index-pattern", "lens", "dashboard"}, f"line {number}"
        assert obj["coreMigrationVersion"] == "8.8.0"
        assert obj["typeMigrationVersion"]


def test_ids_are_unique(objects):
    counts = Counter((o["type"], o["id"]) for o in objects)
    assert [key for key, n in counts.items() if n > 1] == []
    assert len({o["id"] for o in objects}) == len(objects)


def test_every_reference_resolves_inside_the_file(objects):
    present = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        names = [ref["name"] for ref in obj["references"]]
        assert len(names) == len(set(names)), f"{obj['id']}: duplicate reference names"
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in present, f"{obj['id']} -> {ref}"


def test_data_view_is_on_the_profiles_alias(objects):
    [data_view] = of_type(objects, "index-pattern")
    assert data_view["attributes"]["title"] == os.environ["ELASTICSEARCH_INDEX"]
    assert data_view["attributes"].get("timeFieldName") in (None, "last_seen")


def test_each_lens_layer_references_the_data_view(objects):
    [data_view] = of_type(objects, "index-pattern")
    charts = of_type(objects, "lens")
    assert len(charts) == 5
    for chart in charts:
        layers = chart["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
        refs = {ref["name"]: ref for ref in chart["references"]}
        for layer_id in layers:
            ref = refs[f"indexpattern-datasource-layer-{layer_id}"]
            assert (ref["type"], ref["id"]) == ("index-pattern", data_view["id"])


def test_lens_accessors_point_at_defined_columns(objects):
    for chart in of_type(objects, "lens"):
        state = chart["attributes"]["state"]
        [layer] = state["datasourceStates"]["formBased"]["layers"].values()
        columns = set(layer["columns"])
        order = layer["columnOrder"]
        assert sorted(order) == sorted(columns), chart["id"]
        bucketed = [layer["columns"][c]["isBucketed"] for c in order]
        assert bucketed == sorted(bucketed, reverse=True), f"{chart['id']}: buckets must come before metrics"
        vis = state["visualization"]
        used = set()
        for vis_layer in vis.get("layers", [vis]):
            used |= set(
                vis_layer.get("accessors", []) + vis_layer.get("primaryGroups", []) + vis_layer.get("metrics", [])
            )
            used |= {vis_layer[k] for k in ("xAccessor", "splitAccessor") if vis_layer.get(k)}
            used |= {c["columnId"] for c in vis_layer.get("columns", [])}
        assert used and used <= columns, chart["id"]
        for column in layer["columns"].values():
            order = column.get("params", {}).get("orderBy", {})
            if order.get("type") == "column":
                assert order["columnId"] in columns, chart["id"]


def test_dashboard_shows_every_chart(objects):
    [board] = of_type(objects, "dashboard")
    chart_ids = {o["id"] for o in of_type(objects, "lens")}
    assert {r["id"] for r in board["references"] if r["type"] == "lens"} == chart_ids
    panels = json.loads(board["attributes"]["panelsJSON"])
    refs = {r["name"]: r for r in board["references"]}
    assert len(panels) == len(chart_ids)
    for panel in panels:
        assert "id" not in panel, "by-reference panels keep their id in `references`"
        ref = refs[f"{panel['panelIndex']}:{panel['panelRefName']}"]
        assert ref["type"] == panel["type"] == "lens"
        grid = panel["gridData"]
        assert grid["i"] == panel["panelIndex"] and grid["x"] + grid["w"] <= 48


def test_chart_fields_exist_in_the_profile_schema_and_aggregate(objects):
    es_types = {name: spec["type"] for name, spec in es_mapping()["mappings"]["properties"].items()}
    used = set()
    for chart, _, column_id, column in lens_columns(objects):
        field = column.get("sourceField")
        if field is None or field == LENS_RECORDS:
            continue
        where = f"{chart['id']}.{column_id}"
        assert field in PROFILE_COLUMNS, f"{where}: {field} is not a profile field"
        assert es_types[field] in AGGREGATABLE_ES_TYPES, f"{where}: {field} is {es_types[field]}"
        if column["operationType"] in METRIC_OPERATIONS | {"range"}:
            assert es_types[field] in NUMERIC_ES_TYPES, f"{where}: {column['operationType']} of {field}"
            assert column["dataType"] == "number"
        used.add(field)
    # The charts the dashboard promises are built on these fields.
    assert {
        "rfm_segment",
        "views",
        "carts",
        "purchases",
        "top_category",
        "revenue",
        "user_id",
        "recency_days",
        "f_score",
    } <= used

    [data_view] = of_type(objects, "index-pattern")
    for field in json.loads(data_view["attributes"]["fieldFormatMap"]):
        assert field in PROFILE_COLUMNS
