"""Benchmarks of the pipeline's stages (run from the project root: ``python -m bench.run``)."""
