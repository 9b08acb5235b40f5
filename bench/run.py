"""Entry point: ``python -m bench.run [...]`` (see bench/cli.py for the stages and flags)."""

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
