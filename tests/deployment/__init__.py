"""Static checks of the Docker Compose deployment (ecommerce_profiles.deploy_checks)."""

from ecommerce_profiles import deploy_checks  # noqa: F401  (the test modules import it from here)
