"""Generate include/kibana/customer_profiles.ndjson: the Kibana saved objects of the profiles.

    python -m tests.support.kibana_objects     # (via scripts/env.sh) rewrites the NDJSON

The NDJSON is what the DAG imports (POST /api/saved_objects/_import); it is generated so that
every field a chart uses is looked up in plugins/ecommerce_profiles/core/schemas.py (a renamed field fails here, not in
Kibana) and the data view's title is the Elasticsearch alias from .env. A test checks that the
committed file equals this module's output.

Formats, as exported by Kibana 8.x (the target is KIBANA_VERSION in docs/versions.md; saved
objects import only into the same or a newer Kibana than their format):
  * data view: type ``index-pattern``, typeMigrationVersion 8.0.0 (its last migration);
  * charts: type ``lens`` (by-reference Lens visualizations), typeMigrationVersion 8.9.0 (Lens'
    last legacy migration), datasource ``formBased`` with one layer each, whose data view is the
    reference named ``indexpattern-datasource-layer-<layerId>``;
  * dashboard: typeMigrationVersion 10.2.0 (model version 2 of the ``dashboard`` type, 8.16+),
    panels by reference: ``panelRefName: panel_<panelIndex>`` in panelsJSON and a reference named
    ``<panelIndex>:panel_<panelIndex>``;
  * coreMigrationVersion 8.8.0 everywhere (the last core migration; exports from 8.8 up carry it).
Kibana runs its own migrations forward from these versions on import.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ecommerce_profiles.core.paths import INCLUDE_DIR
from ecommerce_profiles.core.schemas import PROFILE_FIELDS, Field

NDJSON_PATH = INCLUDE_DIR / "kibana" / "customer_profiles.ndjson"

CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSIONS = {"index-pattern": "8.0.0", "lens": "8.9.0", "dashboard": "10.2.0"}
# Version stamped on each dashboard panel: the Lens format the panels point at.
PANEL_VERSION = "8.9.0"

DATA_VIEW_ID = "customer-profiles"
DASHBOARD_ID = "customer-profiles-overview"
RECORDS = "___records___"  # Lens' pseudo field for "count of documents"

_FIELDS = {f.name: f for f in PROFILE_FIELDS}
_NUMERIC_ES_TYPES = {"integer", "long", "double", "float", "short", "byte", "scaled_float", "half_float"}


def _field(name: str) -> Field:
    """The schema field ``name``; a KeyError here means a chart uses a field the profiles lack."""
    try:
        return _FIELDS[name]
    except KeyError:
        raise KeyError(
            f"Kibana chart uses {name!r}, which is not in ecommerce_profiles.core.schemas.PROFILE_FIELDS"
        ) from None


def _lens_data_type(field: Field) -> str:
    es_type = field.elasticsearch_type
    if es_type in _NUMERIC_ES_TYPES:
        return "number"
    if es_type == "date":
        return "date"
    return "string"


def _numeric(name: str) -> Field:
    field = _field(name)
    if field.elasticsearch_type not in _NUMERIC_ES_TYPES:
        raise ValueError(f"{name} is {field.elasticsearch_type} in Elasticsearch; a metric needs a number")
    return field


# ------------------------------------------------------------------------------ Lens columns


def count_column(label: str) -> dict[str, Any]:
    return {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "count",
        "isBucketed": False,
        "scale": "ratio",
        "sourceField": RECORDS,
        "params": {"emptyAsNull": True},
    }


def sum_column(field_name: str, label: str) -> dict[str, Any]:
    field = _numeric(field_name)
    return {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "sum",
        "isBucketed": False,
        "scale": "ratio",
        "sourceField": field.name,
        "params": {"emptyAsNull": True},
    }


def terms_column(
    field_name: str, label: str, size: int, order_by_column: str | None = None, other_bucket: bool = False
) -> dict[str, Any]:
    """Top ``size`` values, by a metric column (descending) or alphabetically (ascending)."""
    field = _field(field_name)
    if order_by_column:
        order: dict[str, Any] = {"type": "column", "columnId": order_by_column}
        direction = "desc"
    else:
        order, direction = {"type": "alphabetical", "fallback": False}, "asc"
    return {
        "label": label,
        "customLabel": True,
        "dataType": _lens_data_type(field),
        "operationType": "terms",
        "isBucketed": True,
        "scale": "ordinal",
        "sourceField": field.name,
        "params": {
            "size": size,
            "orderBy": order,
            "orderDirection": direction,
            "otherBucket": other_bucket,
            "missingBucket": False,
            "parentFormat": {"id": "terms"},
        },
    }


def histogram_column(field_name: str, label: str) -> dict[str, Any]:
    """Lens' "Intervals" operation (``range`` in histogram mode, automatic bucket width)."""
    field = _numeric(field_name)
    return {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "range",
        "isBucketed": True,
        "scale": "interval",
        "sourceField": field.name,
        "params": {
            "type": "histogram",
            "maxBars": "auto",
            "includeEmptyRows": True,
            "ranges": [{"from": 0, "to": 1000, "label": ""}],
        },
    }


# ------------------------------------------------------------------------------ saved objects


def _saved_object(type_: str, id_: str, attributes: dict, references: list[dict]) -> dict[str, Any]:
    return {
        "type": type_,
        "id": id_,
        "attributes": attributes,
        "references": references,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSIONS[type_],
        "managed": False,
    }


def data_view(alias: str) -> dict[str, Any]:
    # No time field: the alias always holds one snapshot, and a time filter on last_seen would
    # hide customers whose last event is older than the time picker's range.
    field_formats = {_numeric("revenue").name: {"id": "number", "params": {"pattern": "$0,0.00"}}}
    return _saved_object(
        "index-pattern",
        DATA_VIEW_ID,
        {
            "title": alias,
            "name": "Customer profiles",
            "fields": "[]",
            "fieldFormatMap": json.dumps(field_formats),
            "fieldAttrs": "{}",
            "runtimeFieldMap": "{}",
            "sourceFilters": "[]",
            "typeMeta": "{}",
        },
        [],
    )


def lens(
    id_: str,
    title: str,
    description: str,
    visualization_type: str,
    layer_id: str,
    columns: dict[str, dict],
    visualization: dict,
) -> dict[str, Any]:
    state = {
        "datasourceStates": {
            "formBased": {
                "layers": {
                    layer_id: {
                        "columns": columns,
                        "columnOrder": list(columns),
                        "incompleteColumns": {},
                        "sampling": 1,
                    }
                }
            }
        },
        "visualization": visualization,
        "query": {"query": "", "language": "kuery"},
        "filters": [],
        "internalReferences": [],
        "adHocDataViews": {},
    }
    references = [{"type": "index-pattern", "id": DATA_VIEW_ID, "name": f"indexpattern-datasource-layer-{layer_id}"}]
    return _saved_object(
        "lens",
        id_,
        {
            "title": title,
            "description": description,
            "visualizationType": visualization_type,
            "state": state,
        },
        references,
    )


def _xy(layer: dict, preferred: str, value_labels: str = "hide", **extra: Any) -> dict[str, Any]:
    axes = {"x": True, "yLeft": True, "yRight": True}
    return {
        "legend": {"isVisible": True, "position": "right"},
        "valueLabels": value_labels,
        "fittingFunction": "None",
        "axisTitlesVisibilitySettings": axes,
        "tickLabelsVisibilitySettings": axes,
        "gridlinesVisibilitySettings": axes,
        "preferredSeriesType": preferred,
        "layers": [layer],
        **extra,
    }


def segment_distribution() -> dict[str, Any]:
    layer = "segments"
    columns = {
        "segment": terms_column("rfm_segment", "RFM segment", size=20, order_by_column="customers"),
        "customers": count_column("Customers"),
    }
    visualization = {
        "shape": "donut",
        "layers": [
            {
                "layerId": layer,
                "layerType": "data",
                "primaryGroups": ["segment"],
                "metrics": ["customers"],
                "numberDisplay": "percent",
                "categoryDisplay": "default",
                "legendDisplay": "default",
                "nestedLegend": False,
            }
        ],
    }
    return lens(
        "customer-profiles-segments",
        "Customers by RFM segment",
        "Share of customers in each rfm_segment.",
        "lnsPie",
        layer,
        columns,
        visualization,
    )


def conversion_funnel() -> dict[str, Any]:
    layer = "funnel"
    columns = {
        "views": sum_column("views", "Views"),
        "carts": sum_column("carts", "Carts"),
        "purchases": sum_column("purchases", "Purchases"),
    }
    # No horizontal axis: one group of three bars, views -> carts -> purchases.
    visualization = _xy(
        {
            "layerId": layer,
            "layerType": "data",
            "seriesType": "bar",
            "accessors": list(columns),
            "position": "top",
            "showGridlines": False,
        },
        preferred="bar",
        value_labels="show",
    )
    return lens(
        "customer-profiles-funnel",
        "Conversion funnel",
        "Total views, carts and purchases over all customers.",
        "lnsXY",
        layer,
        columns,
        visualization,
    )


def revenue_by_category() -> dict[str, Any]:
    layer = "categories"
    columns = {
        "category": terms_column("top_category", "Top category", size=10, order_by_column="revenue", other_bucket=True),
        "revenue": sum_column("revenue", "Revenue"),
    }
    visualization = _xy(
        {
            "layerId": layer,
            "layerType": "data",
            "seriesType": "bar_horizontal",
            "xAccessor": "category",
            "accessors": ["revenue"],
            "position": "top",
            "showGridlines": False,
        },
        preferred="bar_horizontal",
        value_labels="show",
    )
    return lens(
        "customer-profiles-revenue-by-category",
        "Revenue by top category",
        "Revenue of customers grouped by their top_category.",
        "lnsXY",
        layer,
        columns,
        visualization,
    )


def top_customers() -> dict[str, Any]:
    layer = "customers"
    columns = {
        "customer": terms_column("user_id", "Customer (user_id)", size=20, order_by_column="revenue"),
        "revenue": sum_column("revenue", "Revenue"),
        "purchases": sum_column("purchases", "Purchases"),
        "views": sum_column("views", "Views"),
    }
    visualization = {
        "layerId": layer,
        "layerType": "data",
        "columns": [{"columnId": c, "isTransposed": False} for c in columns],
        "sorting": {"columnId": "revenue", "direction": "desc"},
        "rowHeight": "single",
        "rowHeightLines": 1,
    }
    return lens(
        "customer-profiles-top-customers",
        "Top customers by revenue",
        "The 20 customers with the highest revenue.",
        "lnsDatatable",
        layer,
        columns,
        visualization,
    )


def recency_vs_frequency() -> dict[str, Any]:
    layer = "recency"
    columns = {
        "recency": histogram_column("recency_days", "Days since last event (recency_days)"),
        "frequency": terms_column("f_score", "Frequency score (f_score)", size=6),
        "customers": count_column("Customers"),
    }
    visualization = _xy(
        {
            "layerId": layer,
            "layerType": "data",
            "seriesType": "bar_stacked",
            "xAccessor": "recency",
            "splitAccessor": "frequency",
            "accessors": ["customers"],
            "position": "top",
            "showGridlines": False,
            "isHistogram": True,
        },
        preferred="bar_stacked",
    )
    return lens(
        "customer-profiles-recency-frequency",
        "Recency vs frequency",
        "Customers per recency_days interval, stacked by f_score (0 = no purchase).",
        "lnsXY",
        layer,
        columns,
        visualization,
    )


# (visualization, x, y, w, h) on Kibana's 48-column dashboard grid
_LAYOUT = (
    (segment_distribution, 0, 0, 16, 15),
    (conversion_funnel, 16, 0, 16, 15),
    (revenue_by_category, 32, 0, 16, 15),
    (recency_vs_frequency, 0, 15, 24, 16),
    (top_customers, 24, 15, 24, 16),
)


def dashboard(panels: list[tuple[dict, int, int, int, int]]) -> dict[str, Any]:
    panel_specs, references = [], []
    for vis, x, y, w, h in panels:
        panel_index = vis["id"]
        panel_specs.append(
            {
                "type": "lens",
                "version": PANEL_VERSION,
                "panelIndex": panel_index,
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": panel_index},
                "embeddableConfig": {"enhancements": {}},
                "panelRefName": f"panel_{panel_index}",
            }
        )
        references.append({"type": vis["type"], "id": vis["id"], "name": f"{panel_index}:panel_{panel_index}"})
    return _saved_object(
        "dashboard",
        DASHBOARD_ID,
        {
            "title": "Customer profiles",
            "description": "RFM segments, funnel, category revenue, top customers and recency of the latest "
            "profile snapshot (Elasticsearch alias of the customer profiles).",
            "panelsJSON": json.dumps(panel_specs),
            "optionsJSON": json.dumps(
                {
                    "useMargins": True,
                    "syncColors": False,
                    "syncCursor": True,
                    "syncTooltips": False,
                    "hidePanelTitles": False,
                }
            ),
            "timeRestore": False,
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})
            },
        },
        references,
    )


def build(alias: str | None = None) -> list[dict[str, Any]]:
    """All saved objects, data view first, dashboard last."""
    alias = alias or os.environ.get("ELASTICSEARCH_INDEX")
    if not alias:
        raise RuntimeError("ELASTICSEARCH_INDEX is not set: run through scripts/env.sh (it loads .env)")
    placed = [(builder(), x, y, w, h) for builder, x, y, w, h in _LAYOUT]
    return [data_view(alias), *(vis for vis, *_ in placed), dashboard(placed)]


def render(objects: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in objects)


def main() -> None:
    NDJSON_PATH.write_text(render(build()))
    print(f"wrote {NDJSON_PATH}")


if __name__ == "__main__":
    main()
