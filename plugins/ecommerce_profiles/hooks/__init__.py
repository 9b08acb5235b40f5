"""Airflow hooks built on the providers' public hook classes."""
