"""Tests of the ecommerce_profiles package (mirrors src/ecommerce_profiles/)."""
