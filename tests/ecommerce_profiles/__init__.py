"""Tests of the ecommerce_profiles package (mirrors plugins/ecommerce_profiles/)."""
