"""The Elasticsearch write A/B's variants: what each one changes against the job's own settings."""

import pytest

from bench import es_write_ab
from ecommerce_profiles.core.schemas import ES_PROFILE_SHARDS, es_mapping
from spark_jobs.spark_conf import es_write_options


def test_as_job_writes_with_the_jobs_own_index_body_and_options():
    settings, options = es_write_ab.VARIANTS["as_job"]
    assert es_write_ab.index_body(settings) == es_mapping()
    assert es_write_ab.writer_options("http://es:9200", "ix", options) == es_write_options("http://es:9200", "ix")


def test_a_shard_variant_changes_the_shard_count_and_nothing_else():
    body = es_write_ab.index_body(es_write_ab.VARIANTS["one_shard"][0])
    expected = es_mapping()
    assert expected["settings"]["number_of_shards"] == ES_PROFILE_SHARDS != 1
    expected["settings"]["number_of_shards"] = 1
    assert body == expected


def test_generated_ids_drop_the_id_option_only():
    options = es_write_ab.writer_options("http://es:9200", "ix", es_write_ab.VARIANTS["generated_ids"][1])
    job = es_write_options("http://es:9200", "ix")
    assert "es.mapping.id" in job and "es.mapping.id" not in options
    assert {k: v for k, v in job.items() if k != "es.mapping.id"} == options


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--profiles", "s3a://b/p", "--variants", "two_shards,nine_shards"], "unknown variant"),
        (["--from-csv", "x.csv", "--copies", "0"], "at least 1"),
        (["--variants", "two_shards"], "one of the arguments --profiles --from-csv is required"),
    ],
)
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        es_write_ab.parse_args(argv)
    assert message in capsys.readouterr().err
