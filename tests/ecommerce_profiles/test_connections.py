import pytest

from ecommerce_profiles.connections import pipeline_names


def test_pipeline_names_default_to_one_node_and_three_partitions():
    names = pipeline_names({})
    assert (names.topic, names.bucket, names.alias) == ("ecommerce_events", "datalake", "customer_profiles")
    assert (names.topic_partitions, names.profile_replicas) == (3, 0)


def test_pipeline_names_read_the_counts_from_the_environment():
    names = pipeline_names({"KAFKA_TOPIC_PARTITIONS": "6", "ELASTICSEARCH_PROFILE_REPLICAS": " 1 "})
    assert (names.topic_partitions, names.profile_replicas) == (6, 1)


@pytest.mark.parametrize(
    "name, value, minimum",
    [
        ("ELASTICSEARCH_PROFILE_REPLICAS", "-1", 0),
        ("ELASTICSEARCH_PROFILE_REPLICAS", "one", 0),
        ("KAFKA_TOPIC_PARTITIONS", "0", 1),
        ("KAFKA_TOPIC_PARTITIONS", "2.5", 1),
    ],
)
def test_a_count_that_is_not_a_whole_number_is_refused_by_name(name, value, minimum):
    with pytest.raises(ValueError, match=rf"{name}='{value}' .* is not a whole number >= {minimum}"):
        pipeline_names({name: value})
