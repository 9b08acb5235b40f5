"""The customer-profile pipeline as an installable package (``pip install -e .``; `make setup`).

Pure cores (validation, Kafka produce, lake layout, Elasticsearch index lifecycle, Kibana
client, Spark transforms) import no Airflow; the Airflow operators and hooks are thin adapters
over them. Assets (the Elasticsearch mapping, Kibana saved objects) live in the project's
``include/`` folder, found through ``ecommerce_profiles.paths``.
"""
