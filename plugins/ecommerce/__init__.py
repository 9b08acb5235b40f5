"""Reusable pipeline code: Airflow puts plugins/ on sys.path, so this is imported as ``ecommerce``.

Modules import Airflow lazily where they can, so the pure parts (generator, validation core)
work in plain Python, in tests and in the CLI scripts.
"""
