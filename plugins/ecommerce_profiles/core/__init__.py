"""The pipeline's pure cores: plain Python over plain values, importing neither Airflow nor Spark."""
