"""A local stand-in for Kibana's saved-objects import API (the one service the local stack does
not run). It enforces the documented contract of POST [/s/<space>]/api/saved_objects/_import the
way Kibana 8.x does (route: src/core/packages/saved-objects/server-internal/src/routes/import.ts;
docs: "Import objects API"): kbn-xsrf header, only the overwrite/createNewCopies/compatibilityMode
query keys and never overwrite with createNewCopies, multipart/form-data with a `file` part named
*.ndjson, one JSON object per line with type/id/attributes, unique type:id pairs, and references
that resolve to the file or to objects already stored. It answers like Kibana: 200 with
success/successCount/successResults/errors (missing_references, conflict, unsupported_type) or
400 Bad Request.
"""

from __future__ import annotations

import json
import threading
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

IMPORTABLE_TYPES = {"index-pattern", "visualization", "lens", "dashboard", "search", "map", "tag"}
ICONS = {
    "index-pattern": "indexPatternApp",
    "lens": "lensApp",
    "dashboard": "dashboardApp",
    "visualization": "visualizeApp",
    "search": "discoverApp",
}
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
        record = {
            "method": "POST",
            "path": url.path,
            "query": parse_qs(url.query, keep_blank_values=True),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
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
            self._reply(
                415, {"statusCode": 415, "error": "Unsupported Media Type", "message": "Unsupported Media Type"}
            )
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
                errors.append(
                    {
                        "type": obj["type"],
                        "id": obj["id"],
                        "title": title,
                        "meta": meta,
                        "error": {"type": "unsupported_type"},
                    }
                )
                continue
            missing = [
                {"type": r["type"], "id": r["id"]}
                for r in obj.get("references", [])
                if (r["type"], r["id"]) not in in_file and (r["type"], r["id"]) not in store
            ]
            if missing:
                errors.append(
                    {
                        "type": obj["type"],
                        "id": obj["id"],
                        "title": title,
                        "meta": meta,
                        "error": {"type": "missing_references", "references": missing},
                    }
                )
                continue
            if key in store and not overwrite:
                errors.append(
                    {"type": obj["type"], "id": obj["id"], "title": title, "meta": meta, "error": {"type": "conflict"}}
                )
                continue
            result = {"type": obj["type"], "id": obj["id"], "meta": meta}
            if key in store:
                result["overwrite"] = True
            successes.append(result)
        for result in successes:
            store[(result["type"], result["id"])] = next(
                o for o in objects if (o["type"], o["id"]) == (result["type"], result["id"])
            )
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
        b"Content-Type: " + content_type.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise BadRequest("Invalid multipart payload format")
    parts = []
    for part in message.iter_parts():
        if part.get_content_disposition() != "form-data":
            raise BadRequest("Invalid multipart payload format")
        parts.append(
            {
                "name": part.get_param("name", header="content-disposition"),
                "filename": part.get_filename(),
                "content": part.get_payload(decode=True),
            }
        )
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


def start_fake_kibana() -> FakeKibana:
    server = FakeKibana()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
