#!/usr/bin/env python
"""List the published profile indices, or roll the alias back to an earlier one.

    python scripts/profiles_alias.py list
    python scripts/profiles_alias.py rollback              # to the published index before the current one
    python scripts/profiles_alias.py rollback --to INDEX   # to a given published index

Uses the same Elasticsearch settings as the pipeline outside Airflow (.env, via
ecommerce_profiles.connections). The DAG keeps the newest published indices
(ecommerce_profiles.core.profile_index.DEFAULT_RETENTION, the aliased one included).
"""

from __future__ import annotations

import argparse
import sys

from ecommerce_profiles.connections import elasticsearch_settings_from_env, pipeline_names
from ecommerce_profiles.core.profile_index import PublishError, profile_indices, rollback_alias


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("list", "rollback"))
    parser.add_argument("--to", help="a published index name (default: the one before the current)")
    parser.add_argument("--alias", default=pipeline_names().alias)
    args = parser.parse_args(argv)
    es = elasticsearch_settings_from_env().client()
    if args.command == "list":
        for name, info in sorted(profile_indices(es, args.alias).items(), key=lambda i: i[1]["published_at"] or ""):
            state = "ALIASED" if info["aliased"] else ("published" if info["published_at"] else "unpublished")
            print(f"{name}  snapshot {info['snapshot']}  {state}  {info['published_at'] or ''}")
        return 0
    try:
        result = rollback_alias(es, args.alias, args.to)
    except PublishError as err:
        print(f"rollback refused: {err}", file=sys.stderr)
        return 1
    print(f"alias {args.alias}: {', '.join(result['from']) or '(none)'} -> {result['to']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
