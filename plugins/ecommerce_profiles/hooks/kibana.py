"""Kibana saved-objects import: a hook on the http provider's HttpHook (the operator is in
``ecommerce_profiles.operators.kibana``).

The Kibana connection is an ordinary ``http`` connection (default id ``kibana_default``):
host/port/schema locate Kibana, login/password (optional) are sent as basic auth, and two
optional extras are read here: ``space_id`` (import into that Kibana space) and ``public_url``
(the address a person uses for the dashboard link, e.g. http://localhost:5601 when Airflow
reaches Kibana as http://kibana:5601). Every other extra is sent as an HTTP header, as HttpHook
does.

Import contract (Kibana 8.x, POST /api/saved_objects/_import, see
src/core/packages/saved-objects/server-internal/src/routes/import.ts and the import API docs):
multipart/form-data with one part ``file`` whose filename must end in ``.ndjson``, header
``kbn-xsrf``; ``overwrite`` and ``createNewCopies`` exclude each other (400). The answer is 200
``{success, successCount, successResults, errors}`` even when objects failed (``success`` false,
``errors[].error.type`` such as ``missing_references`` or ``conflict``), and 400 for a rejected
request (bad extension, non-unique objects, bad query).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.http.hooks.http import HttpHook

# Connection extras this hook consumes; HttpHook would otherwise send them as headers.
_HOOK_EXTRAS = ("space_id", "public_url")

NOT_CONFIGURED_HELP = (
    "define the Airflow connection, e.g. "
    'AIRFLOW_CONN_KIBANA_DEFAULT=\'{"conn_type": "http", "host": "localhost", "port": 5601, '
    '"schema": "http"}\' (add login/password for a secured Kibana, extra space_id for a space; '
    "see .env), or import the file by hand in Kibana: Stack Management > Saved objects > Import"
)


class KibanaImportError(AirflowException):
    """Kibana refused the import, or imported only part of it."""


class KibanaHook(HttpHook):
    """Talks to Kibana's HTTP API through an ``http`` connection."""

    default_conn_name = "kibana_default"

    def __init__(self, kibana_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(method="POST", http_conn_id=kibana_conn_id, **kwargs)
        self.kibana_conn_id = kibana_conn_id
        self._extra: dict[str, Any] | None = None

    @property
    def extra(self) -> dict[str, Any]:
        if self._extra is None:
            self._extra = self.get_connection(self.kibana_conn_id).extra_dejson
        return self._extra

    @property
    def space_id(self) -> str | None:
        return self.extra.get("space_id") or None

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None):
        session = super().get_conn(headers, extra_options)
        for name in _HOOK_EXTRAS:
            session.headers.pop(name, None)
        # requests only writes the multipart Content-Type (with its boundary) when none is set.
        session.headers.pop("Content-Type", None)
        return session

    def _space_prefix(self) -> str:
        return f"/s/{self.space_id}" if self.space_id else ""

    def import_saved_objects(self, ndjson_path: str | Path, overwrite: bool = True) -> dict[str, Any]:
        """Import an NDJSON export; return Kibana's answer or raise KibanaImportError with details.

        ``overwrite`` replaces objects with the same ids, so re-running the import is idempotent.
        ``createNewCopies`` is never sent: it cannot be combined with ``overwrite`` and would
        give the objects new ids on each run.
        """
        path = Path(ndjson_path)
        if path.suffix.lower() != ".ndjson":
            raise ValueError(f"{path}: Kibana only accepts files ending in .ndjson")
        endpoint = f"{self._space_prefix()}/api/saved_objects/_import"
        if overwrite:
            endpoint += "?overwrite=true"
        with path.open("rb") as ndjson:
            response = self.run(
                endpoint=endpoint,
                headers={"kbn-xsrf": "true"},
                files={"file": (path.name, ndjson, "application/ndjson")},
                extra_options={"check_response": False},
            )
        return self._check_import_response(response, path)

    def _check_import_response(self, response, path: Path) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            message = body.get("message", body) if isinstance(body, dict) else response.text[:2000]
            raise KibanaImportError(
                f"Kibana rejected the import of {path.name}: HTTP {response.status_code}: {message}"
            )
        errors = body.get("errors") or []
        if not body.get("success") or errors:
            details = "; ".join(_describe_error(e) for e in errors) or json.dumps(body)[:2000]
            raise KibanaImportError(
                f"Kibana imported {body.get('successCount', 0)} object(s) of {path.name} and refused "
                f"{len(errors)}: {details}"
            )
        return body

    def public_base_url(self) -> str:
        """Where a person opens Kibana: the ``public_url`` extra, else the connection's address."""
        if not self.base_url:
            self.url_from_endpoint(None)  # makes HttpHook read the connection and set base_url
        return str(self.extra.get("public_url") or self.base_url).rstrip("/")

    def dashboard_url(self, dashboard_id: str) -> str:
        return f"{self.public_base_url()}{self._space_prefix()}/app/dashboards#/view/{dashboard_id}"


def _describe_error(error: dict[str, Any]) -> str:
    problem = error.get("error") or {}
    text = f"{error.get('type')}/{error.get('id')} ({error.get('title') or error.get('meta', {}).get('title', '')}): "
    text += str(problem.get("type"))
    if problem.get("type") == "missing_references":
        missing = ", ".join(f"{r.get('type')}/{r.get('id')}" for r in problem.get("references", []))
        text += f" [{missing}]"
    elif problem.get("message"):
        text += f" {problem['message']}"
    return text


def dashboard_ids(ndjson_path: str | Path) -> list[str]:
    """Ids of the dashboards in an NDJSON export, in file order."""
    ids = []
    for line in Path(ndjson_path).read_text().splitlines():
        if line.strip():
            obj = json.loads(line)
            if obj.get("type") == "dashboard":
                ids.append(obj["id"])
    return ids


def single_dashboard_id(ndjson_path: str | Path) -> str:
    ids = dashboard_ids(ndjson_path)
    if len(ids) != 1:
        raise ValueError(f"{ndjson_path} holds {len(ids)} dashboards; pass dashboard_id= to pick one")
    return ids[0]
