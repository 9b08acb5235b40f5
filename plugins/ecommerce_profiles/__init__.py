"""The Airflow side of the customer-profile pipeline (installed editable by `make setup`; in the
image it sits in Airflow's plugins folder).

* ``ecommerce_profiles.core``: the pure cores (schemas, validation, Kafka produce, lake layout,
  Elasticsearch index lifecycle, run plan and summary). They import neither Airflow nor Spark.
* ``operators``, ``hooks``, ``assets``, ``connections``, ``dag_defaults``: thin Airflow adapters
  over the cores.
* ``spark_submit_conf``: what spark-submit is given. The jobs themselves are files in the
  project's ``spark_jobs/`` folder, referenced by path and never imported from here.

Assets (the Elasticsearch mapping, Kibana saved objects) live in the project's ``include/``
folder, found through ``ecommerce_profiles.core.paths``. Importing this package does nothing.
"""
