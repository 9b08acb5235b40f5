"""The spark-submit applications (customer_profiles.py, training_set.py), their pure DataFrame
transforms and their Spark I/O. Nothing here imports Airflow."""
