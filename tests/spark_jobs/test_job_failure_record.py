"""What the profile job records when it fails: the stage, its service, the JVM exception's line."""

from __future__ import annotations

from spark_jobs.customer_profiles import RecordCountError, failure_summary


class FakePy4JError(Exception):
    """The shape of a py4j.protocol.Py4JJavaError's text (a JVM exception behind a Python call)."""


def test_a_jvm_failure_names_the_stage_its_service_and_the_exception_line():
    error = FakePy4JError(
        "An error occurred while calling o172.save.\n"
        ": org.elasticsearch.hadoop.EsHadoopIllegalArgumentException: Cannot detect ES version - typically this "
        "happens if the network/Elasticsearch cluster is not accessible\n\tat org.elasticsearch.hadoop..."
    )
    record = failure_summary(error, "write_elasticsearch")
    assert record["status"] == "failed" and record["failed_stage"] == "write_elasticsearch"
    assert record["service"] == "Elasticsearch"
    assert record["error"].startswith(
        "FakePy4JError: org.elasticsearch.hadoop.EsHadoopIllegalArgumentException: Cannot detect ES version"
    )


def test_a_check_failure_outside_any_stage_is_the_jobs_own():
    record = failure_summary(RecordCountError("2 of 2 Kafka records are not valid events"), "checks")
    assert record["service"] == "the job's own checks"
    assert record["error"] == "RecordCountError: 2 of 2 Kafka records are not valid events"
