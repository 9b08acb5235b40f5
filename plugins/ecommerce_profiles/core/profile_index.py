"""Elasticsearch side of the profiles: a dated index per run, published behind an alias.

Each run writes into a fresh index ``<alias>-<snapshot yyyymmdd>-<stamp>`` created with the
explicit mapping generated from ``ecommerce_profiles.core.schemas``. Only after the Spark write
succeeded and the counts check out is the alias moved, atomically, so readers (Kibana, ML jobs)
never see a half-written snapshot. The alias never moves backwards in time: a backfill of an
older date is kept as its own (published) index but does not steal the alias.

Lifecycle over months (pure functions of an ``elasticsearch.Elasticsearch`` client):

* ``reset_build_index`` starts every attempt of the Spark job with the run's index empty and
  created at that moment (the build task owns its index: a retry never writes into a missing or
  half-written one). Builds run one at a time across runs, and each reads the whole archive up
  to its snapshot date, so of two indices of one snapshot date the one created later was built
  from everything the other saw and more: its ``index.creation_date`` is the build's order.
* ``publish_profile_index`` marks the index published (``_meta.published_at`` in its mapping),
  moves the alias, deletes older *published* indices of the same snapshot date, and keeps only
  the ``retention`` most recently published indices (the aliased one always stays): the rest of
  the history can be rolled back to. An unpublished index belongs to a run still going and is
  never touched. When a later build of the same snapshot date is already published, the index
  is *superseded*: it is deleted instead of published, and the alias stays (the newest build of
  a date wins, whichever order the publishes come in).
* ``discard_unpublished_index`` removes a run's own index when the run did not publish it (a
  failed run leaves no orphan).
* ``rollback_alias`` points the alias at an earlier published index (``scripts/profiles_alias.py``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ecommerce_profiles.core.schemas import ES_SERVING_SETTINGS, es_mapping

# Published indices kept for rollback, the one behind the alias included.
DEFAULT_RETENTION = 3
# How long publishing waits for the replicas to be allocated and copied before it gives up.
REPLICA_WAIT_SECONDS = 120


class PublishError(RuntimeError):
    """The index does not hold what the Spark job reported: the alias was not moved."""


class IndexStateError(PublishError):
    """The index is not in a state the step can work from (gone, or already published): a retry
    would fail the same way."""


def dated_index_name(alias: str, snapshot_date: str, run_stamp: str) -> str:
    stamp = re.sub(r"[^0-9a-z]", "", run_stamp.lower())[:20]
    return f"{alias}-{snapshot_date.replace('-', '')}-{stamp}"


def snapshot_of(index: str, alias: str) -> str | None:
    match = re.fullmatch(re.escape(alias) + r"-(\d{8})-[0-9a-z]+", index)
    return match.group(1) if match else None


def create_profile_index(es, alias: str, snapshot_date: str, now: datetime | None = None) -> str:
    """A fresh index name per attempt (the index behind the alias is never written in place)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%f")
    index = dated_index_name(alias, snapshot_date, stamp)
    es.indices.create(index=index, **es_mapping())
    return index


def profile_indices(es, alias: str) -> dict[str, dict[str, Any]]:
    """Every ``<alias>-<date>-<stamp>`` index: {name: {snapshot, aliased, published_at, created, run_id}}.

    ``created`` is Elasticsearch's ``index.creation_date`` (epoch milliseconds): when the build
    that filled the index started (``reset_build_index``). ``run_id`` is the publishing run's.
    """
    found = es.indices.get(index=f"{alias}-*", ignore_unavailable=True, allow_no_indices=True)
    out = {}
    for name, body in found.items():
        snapshot = snapshot_of(name, alias)
        if snapshot is None:
            continue
        meta = (body.get("mappings") or {}).get("_meta") or {}
        settings = (body.get("settings") or {}).get("index") or {}
        out[name] = {
            "snapshot": snapshot,
            "aliased": alias in (body.get("aliases") or {}),
            "published_at": meta.get("published_at"),
            "created": int(settings.get("creation_date") or 0),
            "run_id": meta.get("run_id"),
        }
    return out


def reset_build_index(es, alias: str, index: str) -> str:
    """The run's index, empty and created now, before an attempt of the Spark job writes into it.

    The build owns its index: whatever an earlier attempt left (documents of a failed write) is
    dropped, and an index that is gone is created again, so a retry can always succeed. Its
    creation time becomes the build's start, which orders builds of one snapshot date (see
    ``publish_profile_index``). Returns ``"created"`` (there was none) or ``"recreated"``.
    Raises IndexStateError for a published index: its run already served it; a build never
    rewrites what readers see (clear the run from ``create_profile_index`` for a new index).
    """
    if snapshot_of(index, alias) is None:
        raise IndexStateError(f"Index name {index} does not follow {alias}-<yyyymmdd>-<stamp>")
    info = profile_indices(es, alias).get(index)
    if info and (info["published_at"] or info["aliased"]):
        raise IndexStateError(
            f"Index {index} was already published (at {info['published_at']}, run {info['run_id']}): "
            "a build never rewrites a published index; clear the run from create_profile_index to build a new one"
        )
    if info:
        es.indices.delete(index=index)
    es.indices.create(index=index, **es_mapping())
    return "recreated" if info else "created"


def later_build_published(existing: dict[str, dict[str, Any]], index: str) -> str | None:
    """A published index of ``index``'s snapshot date built after it (the latest such), or None."""
    own = existing[index]
    later = [
        name
        for name, info in existing.items()
        if name != index
        and info["snapshot"] == own["snapshot"]
        and (info["published_at"] or info["aliased"])
        and info["created"] > own["created"]
    ]
    return max(later, key=lambda name: existing[name]["created"], default=None)


def restore_serving_settings(es, index: str, replicas: int, wait_seconds: int = REPLICA_WAIT_SECONDS) -> None:
    """Give a bulk-loaded index its serving settings and ``replicas`` replicas (it was loaded
    with none: each replica would index every document again while the job writes), and wait
    until every copy is allocated and started. Raises PublishError if they are not in time."""
    es.indices.put_settings(index=index, settings={"index": {**ES_SERVING_SETTINGS, "number_of_replicas": replicas}})
    if replicas:
        # Elasticsearch answers a wait that timed out with 408 and the health; the client's own
        # timeout must outlast the server's.
        health = es.options(ignore_status=408, request_timeout=wait_seconds + 30).cluster.health(
            index=index, wait_for_status="green", timeout=f"{wait_seconds}s"
        )
        if health["timed_out"] or health["status"] != "green":
            raise PublishError(
                f"Index {index} did not get its {replicas} replica(s) within {wait_seconds}s: status {health['status']}, "
                f"{health['unassigned_shards']} unassigned shard(s) on {health['number_of_nodes']} node(s) "
                "(each replica needs a data node of its own besides the primary's)"
            )


def publish_profile_index(
    es,
    *,
    alias: str,
    index: str,
    expected_docs: int,
    retention: int = DEFAULT_RETENTION,
    replicas: int = 0,
    replica_wait_seconds: int = REPLICA_WAIT_SECONDS,
    run_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Check the new index holds ``expected_docs`` documents and has its ``replicas``, then move
    the alias atomically.

    The newest build of a snapshot date wins: when an index of the same date built later (created
    later, see ``reset_build_index``) is already published, this one is deleted instead and the
    result has ``superseded_by`` (that index) and ``superseded_by_run``; nothing else changes.
    Callers run one publish at a time (the check and the alias move are not atomic together).
    Raises IndexStateError when the index is gone, PublishError when a check fails.
    """
    if retention < 1:
        raise ValueError("retention must keep at least the published index")
    if replicas < 0:
        raise ValueError(f"replicas must be 0 or more, not {replicas}")
    snapshot = snapshot_of(index, alias)
    if snapshot is None:
        raise PublishError(f"Index name {index} does not follow <alias>-<yyyymmdd>-<stamp>")
    existing = profile_indices(es, alias)
    if index not in existing:
        raise IndexStateError(
            f"Index {index} does not exist (deleted outside this run?): nothing to publish; "
            f"the alias {alias} was NOT moved. Clear build_profiles to build it again."
        )
    newer = later_build_published(existing, index)
    if newer:
        if not existing[index]["published_at"] and not existing[index]["aliased"]:
            es.indices.delete(index=index)
        return {
            "index": index,
            "docs": None,
            "replicas": replicas,
            "alias_moved": False,
            "alias_snapshot": max((i["snapshot"] for i in existing.values() if i["aliased"]), default=""),
            "superseded_by": newer,
            "superseded_by_run": existing[newer]["run_id"],
            "deleted_indices": [index],
            "retention": retention,
        }
    es.indices.refresh(index=index)
    docs = es.count(index=index)["count"]
    if docs != expected_docs:
        raise PublishError(
            f"Index {index} holds {docs} profile documents but the Spark job reported "
            f"{expected_docs} profiles; the alias {alias} was NOT moved."
        )
    try:
        restore_serving_settings(es, index, replicas, replica_wait_seconds)
    except PublishError as err:
        raise PublishError(f"{err}; the alias {alias} was NOT moved.") from err
    published_at = (now or datetime.now(UTC)).isoformat()
    meta = {"published_at": published_at, "snapshot_date": snapshot, "documents": docs}
    if run_id:
        meta["run_id"] = run_id
    es.indices.put_mapping(index=index, meta=meta)

    existing = profile_indices(es, alias)
    aliased = [name for name, info in existing.items() if info["aliased"]]
    aliased_snapshot = max((existing[n]["snapshot"] for n in aliased), default="")
    move_alias = snapshot >= aliased_snapshot
    if move_alias:
        actions = [{"remove": {"index": name, "alias": alias}} for name in aliased if name != index]
        actions.append({"add": {"index": index, "alias": alias}})
        es.indices.update_aliases(actions=actions)
        aliased = [index]

    # One published index per snapshot date: this newest build replaces the date's earlier
    # published ones. Unpublished indices belong to runs still going (or to their clean-up).
    deleted = sorted(
        n
        for n, info in existing.items()
        if n != index and info["snapshot"] == snapshot and info["published_at"] and n not in aliased
    )
    # Retention: the newest published indices (by publish time), the aliased one always kept.
    published = sorted(
        (n for n, info in existing.items() if n not in deleted and n not in aliased and info["published_at"]),
        key=lambda n: existing[n]["published_at"],
        reverse=True,
    )
    keep = set(aliased) | set(published[: max(retention - len(aliased), 0)])
    deleted += sorted(n for n in published if n not in keep)
    for name in deleted:
        es.indices.delete(index=name)
    return {
        "index": index,
        "docs": docs,
        "replicas": replicas,
        "alias_moved": move_alias,
        "alias_snapshot": snapshot if move_alias else aliased_snapshot,
        "superseded_by": None,
        "deleted_indices": sorted(deleted),
        "retention": retention,
    }


def discard_unpublished_index(es, alias: str, index: str | None) -> bool:
    """Delete a run's own index if it was never published (failed run); True when deleted."""
    if not index:
        return False
    info = profile_indices(es, alias).get(index)
    if info is None or info["published_at"] or info["aliased"]:
        return False
    es.indices.delete(index=index)
    return True


def rollback_alias(es, alias: str, to_index: str | None = None) -> dict[str, Any]:
    """Point the alias at ``to_index`` (default: the published index before the aliased one).

    Only published indices are candidates. Returns {"from": ..., "to": ...}.
    """
    existing = profile_indices(es, alias)
    published = sorted((n for n, i in existing.items() if i["published_at"]), key=lambda n: existing[n]["published_at"])
    current = [n for n, i in existing.items() if i["aliased"]]
    if to_index is None:
        earlier = [n for n in published if n not in current]
        if not earlier:
            raise PublishError(f"no earlier published index of {alias} to roll back to (have: {published})")
        to_index = earlier[-1]
    elif to_index not in published:
        raise PublishError(f"{to_index} is not a published index of {alias} (published: {published})")
    actions = [{"remove": {"index": n, "alias": alias}} for n in current if n != to_index]
    actions.append({"add": {"index": to_index, "alias": alias}})
    es.indices.update_aliases(actions=actions)
    return {"from": current, "to": to_index}
