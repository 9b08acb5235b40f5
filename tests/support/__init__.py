"""Helpers shared by the tests: private pipeline environments, lake and index readers, recomputation."""
