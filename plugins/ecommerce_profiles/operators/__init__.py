"""Airflow operators: thin adapters that resolve connections and delegate to the pure cores."""
