"""KibanaHook / KibanaImportOperator against the local stand-in for Kibana's import API
(tests/support/fake_kibana.py: Kibana is the one service the local stack does not run; the
stand-in enforces the documented import contract, so these tests can fail)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from ecommerce_profiles.hooks.kibana import KibanaHook, KibanaImportError
from ecommerce_profiles.operators.kibana import KibanaImportOperator
from tests.support.fake_kibana import IMPORT_PATH, FakeKibana, start_fake_kibana
from tests.support.kibana_objects import DASHBOARD_ID, NDJSON_PATH

# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def kibana():
    server = start_fake_kibana()
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
    use_kibana_connection(monkeypatch, kibana, extra={"space_id": "marketing", "public_url": "http://localhost:5601/"})
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
        {
            "type": "lens",
            "id": "orphan-chart",
            "attributes": {"title": "Orphan"},
            "references": [
                {"type": "index-pattern", "id": "no-such-data-view", "name": "indexpattern-datasource-layer-l1"}
            ],
        },
        {
            "type": "dashboard",
            "id": "board",
            "attributes": {"title": "Board"},
            "references": [{"type": "lens", "id": "orphan-chart", "name": "p1:panel_p1"}],
        },
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
