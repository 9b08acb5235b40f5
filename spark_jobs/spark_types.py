"""The Spark side of the project's schemas: StructTypes built from the one source of the fields
(``ecommerce_profiles.core.schemas``), which itself imports no Spark."""

from __future__ import annotations

from ecommerce_profiles.core.schemas import PROFILE_FIELDS, Field


def spark_schema(fields: tuple[Field, ...] = PROFILE_FIELDS):
    """A pyspark StructType for ``fields`` (pyspark is imported lazily; no SparkContext needed)."""
    from pyspark.sql import types as T

    # Built directly rather than parsed from type strings: _parse_datatype_string needs a running
    # SparkContext, and modules build schemas at import time.
    spark_types = {
        "string": T.StringType(),
        "int": T.IntegerType(),
        "bigint": T.LongType(),
        "double": T.DoubleType(),
        "date": T.DateType(),
        "timestamp": T.TimestampType(),
    }
    return T.StructType([T.StructField(f.name, spark_types[f.spark_type], f.nullable) for f in fields])
