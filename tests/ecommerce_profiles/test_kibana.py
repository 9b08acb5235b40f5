"""KibanaHook / KibanaImportOperator against a local stand-in for Kibana's import API.

Kibana is the one service the local stack does not run, so this module starts an HTTP server
(127.0.0.1, random port) that enforces the documented contract of
POST [/s/<space>]/api/saved_objects/_import the way Kibana 8.x does (route:
src/core/packages/saved-objects/server-internal/src/routes/import.ts; docs: "Import objects API"):
kbn-xsrf header, only the overwrite/createNewCopies/compatibilityMode query keys and never
overwrite with createNewCopies, multipart/form-data with a `file` part named *.ndjson, one JSON
object per line with type/id/attributes, unique type:id pairs, and references that resolve to
the file or to objects already stored. It answers like Kibana: 200 with success/successCount/
successResults/errors (missing_references, conflict, unsupported_type) or 400 Bad Request.
"""

from __future__ import annotations

import base64
import json
import threading
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from airflow.sdk.exceptions import AirflowSkipException

from ecommerce_profiles.kibana import KibanaHook, KibanaImportError, KibanaImportOperator
from ecommerce_profiles.kibana_objects import DASHBOARD_ID, NDJSON_PATH

IMPORTABLE_TYPES = {"index-pattern", "visualization", "lens", "dashboard", "search", "map", "tag"}
ICONS = {"index-pattern": "indexPatternApp", "lens": "lensApp", "dashboard": "dashboardApp",
         "visualization": "visualizeApp", "search": "discoverApp"}
IMPORT_PATH = "/api/saved_objects/_import"


class BadRequest(Exception):
    pass


class FakeKibana(ThreadingHTTPServer):
    """Records every request and keeps the imported objects per space."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KibanaHandler)
        self.requests: list[dict] = []
        self.stored: dict[str, dict[tuple[str, str], dict]] = {}

    @property
    def port(self) -> int:
        return self.server_address[1]


class _KibanaHandler(BaseHTTPRequestHandler):
    server: FakeKibana

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._reply(404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        record = {"method": "POST", "path": url.path, "query": parse_qs(url.query, keep_blank_values=True),
                  "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        self.server.requests.append(record)
        space = "default"
        path = url.path
        if path.startswith("/s/"):
            _, _, space, rest = path.split("/", 3)
            path = "/" + rest
        if path != IMPORT_PATH:
            self._reply(404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"})
            return
        if "kbn-xsrf" not in record["headers"]:
            self._reply(400, _bad_request("Request must contain a kbn-xsrf header."))
            return
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
            self._reply(415, {"statusCode": 415, "error": "Unsupported Media Type",
                              "message": "Unsupported Media Type"})
            return
        try:
            overwrite = self._validate_query(record["query"])
            record["parts"] = parts = _multipart_parts(content_type, body)
            objects = _parse_import_file(parts)
        except BadRequest as exc:
            self._reply(400, _bad_request(str(exc)))
            return
        self._reply(200, self._import(space, objects, overwrite))

    @staticmethod
    def _validate_query(query: dict[str, list[str]]) -> bool:
        flags = {}
        for key, values in query.items():
            if key not in {"overwrite", "createNewCopies", "compatibilityMode"}:
                raise BadRequest(f"[request query.{key}]: definition for this key is missing")
            if len(values) != 1 or values[0] not in {"true", "false"}:
                raise BadRequest(f"[request query.{key}]: expected value of type [boolean]")
            flags[key] = values[0] == "true"
        if flags.get("overwrite") and flags.get("createNewCopies"):
            raise BadRequest("[request query]: cannot use [overwrite] with [createNewCopies]")
        if flags.get("createNewCopies") and flags.get("compatibilityMode"):
            raise BadRequest("[request query]: cannot use [createNewCopies] with [compatibilityMode]")
        return flags.get("overwrite", False)

    def _import(self, space: str, objects: list[dict], overwrite: bool) -> dict:
        store = self.server.stored.setdefault(space, {})
        in_file = {(o["type"], o["id"]) for o in objects}
        errors, successes = [], []
        for obj in objects:
            key = (obj["type"], obj["id"])
            title = obj["attributes"].get("title", "")
            meta = {"title": title, "icon": ICONS.get(obj["type"], "")}
            if obj["type"] not in IMPORTABLE_TYPES:
                errors.append({"type": obj["type"], "id": obj["id"], "title": title, "meta": meta,
                               "error": {"type": "unsupported_type"}})
                continue
            missing = [{"type": r["type"], "id": r["id"]} for r in obj.get("references", [])
                       if (r["type"], r["id"]) not in in_file and (r["type"], r["id"]) not in store]
            if missing:
                errors.append({"type": obj["type"], "id": obj["id"], "title": title, "meta": meta,
                               "error": {"type": "missing_references", "references": missing}})
                continue
            if key in store and not overwrite:
                errors.append({"type": obj["type"], "id": obj["id"], "title": title, "meta": meta,
                               "error": {"type": "conflict"}})
                continue
            result = {"type": obj["type"], "id": obj["id"], "meta": meta}
            if key in store:
                result["overwrite"] = True
            successes.append(result)
        for result in successes:
            store[(result["type"], result["id"])] = next(
                o for o in objects if (o["type"], o["id"]) == (result["type"], result["id"]))
        response = {"success": not errors, "successCount": len(successes), "warnings": []}
        if successes:
            response["successResults"] = successes
        if errors:
            response["errors"] = errors
        return response


def _bad_request(message: str) -> dict:
    return {"statusCode": 400, "error": "Bad Request", "message": message}


def _multipart_parts(content_type: str, body: bytes) -> list[dict]:
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
    if not message.is_multipart():
        raise BadRequest("Invalid multipart payload format")
    parts = []
    for part in message.iter_parts():
        if part.get_content_disposition() != "form-data":
            raise BadRequest("Invalid multipart payload format")
        parts.append({"name": part.get_param("name", header="content-disposition"),
                      "filename": part.get_filename(), "content": part.get_payload(decode=True)})
    return parts


def _parse_import_file(parts: list[dict]) -> list[dict]:
    files = [p for p in parts if p["name"] == "file"]
    if len(parts) != 1 or len(files) != 1:
        raise BadRequest("[request body.file]: expected exactly one part named file")
    filename = files[0]["filename"] or ""
    extension = Path(filename).suffix.lower()
    if extension != ".ndjson":
        raise BadRequest(f"Invalid file extension {extension}")
    objects, seen, duplicates = [], set(), []
    for number, line in enumerate(files[0]["content"].decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"line {number}: {exc}") from None
        if not isinstance(obj, dict) or not all(k in obj for k in ("type", "id", "attributes")):
            raise BadRequest(f"line {number}: not a saved object with type, id and attributes")
        key = f"{obj['type']}:{obj['id']}"
        if key in seen:
            duplicates.append(key)
        seen.add(key)
        objects.append(obj)
    if duplicates:
        raise BadRequest(f"Non-unique import objects detected: [{','.join(duplicates)}]")
    return objects


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def kibana():
    server = FakeKibana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def use_kibana_connection(monkeypatch, server: FakeKibana, **fields) -> None:
    conn = {"conn_type": "http", "host": "127.0.0.1", "port": server.port, "schema": "http", **fields}
    monkeypatch.setenv("AIRFLOW_CONN_KIBANA_DEFAULT", json.dumps(conn))


def write_ndjson(path: Path, *objects: dict) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))
    return path


def saved_objects() -> list[dict]:
    return [json.loads(line) for line in NDJSON_PATH.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------- tests


def test_operator_imports_the_project_objects_with_a_conforming_request(kibana, monkeypatch):
    use_kibana_connection(monkeypatch, kibana, login="elastic", password="changeme-test")
    operator = KibanaImportOperator(task_id="import_kibana_objects", ndjson_path=str(NDJSON_PATH))

    url = operator.execute(context={})

    assert url == f"http://127.0.0.1:{kibana.port}/app/dashboards#/view/{DASHBOARD_ID}"
    assert len(kibana.requests) == 1
    sent = kibana.requests[0]
    assert sent["method"] == "POST"
    assert sent["path"] == IMPORT_PATH
    assert sent["query"] == {"overwrite": ["true"]}
    assert sent["headers"]["kbn-xsrf"] == "true"
    assert sent["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert sent["headers"]["authorization"] == "Basic " + base64.b64encode(b"elastic:changeme-test").decode()
    [part] = sent["parts"]
    assert (part["name"], part["filename"]) == ("file", "customer_profiles.ndjson")
    assert part["content"] == NDJSON_PATH.read_bytes()
    # Every object landed, so every reference in the file resolved inside the file.
    assert set(kibana.stored["default"]) == {(o["type"], o["id"]) for o in saved_objects()}


def test_reimport_overwrites_instead_of_conflicting(kibana, monkeypatch):
    use_kibana_connection(monkeypatch, kibana)
    hook = KibanaHook()
    first = hook.import_saved_objects(NDJSON_PATH)
    second = hook.import_saved_objects(NDJSON_PATH)

    assert first["success"] and second["success"]
    assert second["successCount"] == len(saved_objects())
    assert all(result.get("overwrite") for result in second["successResults"])


def test_space_id_and_public_url_extras(kibana, monkeypatch):
    use_kibana_connection(monkeypatch, kibana,
                          extra={"space_id": "marketing", "public_url": "http://localhost:5601/"})
    operator = KibanaImportOperator(task_id="import_kibana_objects", ndjson_path=str(NDJSON_PATH))

    url = operator.execute(context={})

    assert url == f"http://localhost:5601/s/marketing/app/dashboards#/view/{DASHBOARD_ID}"
    sent = kibana.requests[0]
    assert sent["path"] == f"/s/marketing{IMPORT_PATH}"
    # The hook's own extras are not leaked as HTTP headers (HttpHook sends other extras as headers).
    assert "space_id" not in sent["headers"] and "public_url" not in sent["headers"]
    assert set(kibana.stored["marketing"]) == {(o["type"], o["id"]) for o in saved_objects()}


def test_missing_references_raise_with_details(kibana, monkeypatch, tmp_path):
    use_kibana_connection(monkeypatch, kibana)
    ndjson = write_ndjson(
        tmp_path / "orphan.ndjson",
        {"type": "lens", "id": "orphan-chart", "attributes": {"title": "Orphan"},
         "references": [{"type": "index-pattern", "id": "no-such-data-view",
                         "name": "indexpattern-datasource-layer-l1"}]},
        {"type": "dashboard", "id": "board", "attributes": {"title": "Board"},
         "references": [{"type": "lens", "id": "orphan-chart", "name": "p1:panel_p1"}]},
    )

    with pytest.raises(KibanaImportError) as raised:
        KibanaHook().import_saved_objects(ndjson)

    message = str(raised.value)
    assert "lens/orphan-chart" in message
    assert "missing_references" in message
    assert "index-pattern/no-such-data-view" in message
    assert "imported 1 object" in message  # Kibana still imports what it can


def test_bad_request_raises_with_kibana_message(kibana, monkeypatch, tmp_path):
    use_kibana_connection(monkeypatch, kibana)
    chart = {"type": "lens", "id": "twice", "attributes": {"title": "Twice"}, "references": []}
    ndjson = write_ndjson(tmp_path / "twice.ndjson", chart, chart)

    with pytest.raises(KibanaImportError, match=r"HTTP 400: Non-unique import objects detected: \[lens:twice\]"):
        KibanaHook().import_saved_objects(ndjson)


def test_only_ndjson_files_are_sent(kibana, monkeypatch, tmp_path):
    use_kibana_connection(monkeypatch, kibana)
    json_file = tmp_path / "objects.json"
    json_file.write_text(NDJSON_PATH.read_text())

    with pytest.raises(ValueError, match=r"\.ndjson"):
        KibanaHook().import_saved_objects(json_file)
    assert kibana.requests == []


def test_missing_connection_skips_with_instructions(monkeypatch, capfd):
    monkeypatch.delenv("AIRFLOW_CONN_KIBANA_DEFAULT", raising=False)
    operator = KibanaImportOperator(task_id="import_kibana_objects", ndjson_path=str(NDJSON_PATH))

    with pytest.raises(AirflowSkipException, match="not configured"):
        operator.execute(context={})

    # Airflow 3 task logs go through structlog to the console, not to pytest's caplog.
    logged = "".join(capfd.readouterr())
    assert "Kibana is not configured" in logged
    assert "AIRFLOW_CONN_KIBANA_DEFAULT" in logged


@pytest.mark.parametrize(
    ("query", "headers", "filename", "expected"),
    [
        ("overwrite=true", {}, "objects.ndjson", "kbn-xsrf"),
        ("overwrite=true&createNewCopies=true", {"kbn-xsrf": "true"}, "objects.ndjson",
         "cannot use [overwrite] with [createNewCopies]"),
        ("overwrite=true", {"kbn-xsrf": "true"}, "objects.json", "Invalid file extension .json"),
    ],
)
def test_stand_in_rejects_what_kibana_rejects(kibana, query, headers, filename, expected):
    """The stand-in is strict, so the hook tests above can fail."""
    response = requests.post(f"http://127.0.0.1:{kibana.port}{IMPORT_PATH}?{query}", headers=headers,
                             files={"file": (filename, NDJSON_PATH.read_bytes(), "application/ndjson")}, timeout=10)
    assert response.status_code == 400
    assert expected in response.json()["message"]
