"""Spark code of the pipeline: pure transforms (profile_transforms) and the jobs that wire them to I/O."""
