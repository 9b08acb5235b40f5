"""Tests of plugins/ecommerce.

Airflow adds plugins/ to sys.path when it is imported; the pure modules (generator, validation
core) are tested without importing Airflow first, so make ``ecommerce`` importable here too.
"""

import sys
from pathlib import Path

_PLUGINS = str(Path(__file__).resolve().parents[2] / "plugins")
if _PLUGINS not in sys.path:
    sys.path.insert(0, _PLUGINS)
