"""The Spark conf: the submit side (plugins/ecommerce_profiles/spark_submit_conf.py, what the DAG hands to
spark-submit) and the job side (spark_jobs/spark_conf.py, what the job applies itself)."""

from __future__ import annotations

import json

import pytest

from ecommerce_profiles import spark_submit_conf
from spark_jobs import spark_conf


@pytest.fixture
def jars_dir(tmp_path):
    for name in ("b-connector-1.0.jar", "a-connector-2.0.jar"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / ".manifest").write_text("not a jar")
    return tmp_path


def test_local_jars_lists_only_jars_sorted(jars_dir):
    assert spark_submit_conf.local_jars(jars_dir) == [
        str(jars_dir / "a-connector-2.0.jar"),
        str(jars_dir / "b-connector-1.0.jar"),
    ]


def test_local_jars_refuses_an_empty_cache(tmp_path):
    with pytest.raises(FileNotFoundError, match="spark_jars.sh"):
        spark_submit_conf.local_jars(tmp_path)


@pytest.mark.parametrize(
    ("master", "key", "separator"),
    [
        ("local[2]", "spark.driver.extraClassPath", ":"),
        ("local", "spark.driver.extraClassPath", ":"),
        ("spark://spark-master:7077", "spark.jars", ","),
        (None, "spark.jars", ","),
    ],
)
def test_jars_reach_the_executors_for_every_master(jars_dir, master, key, separator):
    conf = spark_submit_conf.job_conf(
        spark_submit_conf.s3a_conf("http://minio:9000", "k", "s"), master=master, jars_dir=jars_dir
    )
    assert conf[key] == separator.join(spark_submit_conf.local_jars(jars_dir))
    assert ("spark.jars" in conf) != ("spark.driver.extraClassPath" in conf)


def test_job_conf_carries_the_s3a_settings_and_the_job_defaults(jars_dir, monkeypatch):
    monkeypatch.setenv("SPARK_DRIVER_MEMORY", "3g")
    conf = spark_submit_conf.job_conf(
        spark_submit_conf.s3a_conf("http://minio:9000", "key", "secret"), master="local[2]", jars_dir=jars_dir
    )
    assert conf["spark.driver.memory"] == "3g"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.sources.partitionOverwriteMode"] == "dynamic"
    assert conf["spark.hadoop.fs.s3a.access.key"] == "key"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "secret"


@pytest.mark.parametrize(("endpoint", "ssl"), [("http://localhost:9000", "false"), ("https://s3.example.test", "true")])
def test_s3a_conf_follows_the_endpoint_scheme(endpoint, ssl):
    conf = spark_submit_conf.s3a_conf(endpoint, "k", "s")
    assert conf["spark.hadoop.fs.s3a.endpoint"] == endpoint
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == ssl
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"


def test_es_write_options_never_create_the_index():
    options = spark_conf.es_write_options(
        "https://es.example.test:9243", "customer_profiles_20200925", user="u", password="p"
    )
    assert (options["es.nodes"], options["es.port"], options["es.net.ssl"]) == ("es.example.test", "9243", "true")
    assert options["es.resource"] == "customer_profiles_20200925"
    assert options["es.index.auto.create"] == "false"
    assert options["es.mapping.id"] == "user_id"
    assert options["es.nodes.wan.only"] == "true"
    assert (options["es.net.http.auth.user"], options["es.net.http.auth.pass"]) == ("u", "p")
    assert spark_conf.es_write_options("http://localhost:9200", "i")["es.net.ssl"] == "false"


def test_offsets_json_is_sparks_per_partition_format():
    text = spark_conf.offsets_json("events", {1: 7, 0: spark_conf.EARLIEST})
    assert json.loads(text) == {"events": {"0": -2, "1": 7}}


def test_records_in_range_counts_a_bounded_range_only():
    starting = spark_conf.offsets_json("events", {0: 10, 1: 0, 2: 5})
    ending = spark_conf.offsets_json("events", {0: 110, 1: 40, 2: 5})
    assert spark_conf.records_in_range(starting, ending) == 140
    # A sentinel (earliest/latest) or another set of partitions: unknown before reading.
    earliest = spark_conf.offsets_json("events", {0: spark_conf.EARLIEST, 1: 0, 2: 5})
    assert spark_conf.records_in_range(earliest, ending) is None
    latest = spark_conf.offsets_json("events", {0: 110, 1: spark_conf.LATEST, 2: 5})
    assert spark_conf.records_in_range(starting, latest) is None
    assert spark_conf.records_in_range(spark_conf.offsets_json("events", {0: 10}), ending) is None
    assert spark_conf.records_in_range(starting, spark_conf.offsets_json("other", {0: 110, 1: 40, 2: 5})) is None


def test_spark_submit_command_puts_conf_before_the_application():
    command = spark_submit_conf.spark_submit_command(
        "job.py", ["--x", "1"], {"a": "b"}, spark_submit="/bin/spark-submit"
    )
    assert command == ["/bin/spark-submit", "--master", "local[2]", "--conf", "a=b", "job.py", "--x", "1"]
