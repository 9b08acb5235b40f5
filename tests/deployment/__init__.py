"""Static checks of the Docker Compose deployment (tests.support.deploy_checks)."""

from tests.support import deploy_checks  # noqa: F401  (the test modules import it from here)
