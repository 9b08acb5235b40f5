"""The local authenticating Elasticsearch endpoint (scripts/services/esproxy.sh): nginx demanding
HTTP basic auth in front of the local Elasticsearch, on ELASTICSEARCH_AUTH_URL.

Every pipeline client goes through it: the Airflow connection elasticsearch_default (operators,
summarise_run), the Python client of connections.elasticsearch_settings_from_env, and the Spark
es-hadoop writer (spark.es.net.http.auth.* from the 0600 properties file; the DAG end-to-end
tests run that path, a spark-submit here would cost ~30 s).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
from elasticsearch import AuthenticationException, helpers

from ecommerce_profiles.connections import (
    ElasticsearchSettings,
    elasticsearch_admin_settings_from_env,
    elasticsearch_settings_from_env,
)

from .stack_cli import assert_status_up, assert_up_refuses_taken_port


@pytest.fixture(scope="module")
def auth_url(stack) -> str:
    url = os.environ["ELASTICSEARCH_AUTH_URL"]
    assert url == f"http://localhost:{os.environ['ELASTICSEARCH_AUTH_PORT']}"
    assert url != stack["elasticsearch"]
    return url


@pytest.fixture(scope="module")
def credentials() -> tuple[str, str]:
    return os.environ["ELASTICSEARCH_USER"], os.environ["ELASTICSEARCH_PASSWORD"]


def test_a_request_without_credentials_is_refused(auth_url):
    for method in ("GET", "HEAD", "POST"):
        answer = requests.request(method, f"{auth_url}/_search" if method == "POST" else auth_url, timeout=10)
        assert answer.status_code == 401, method
        assert answer.headers["WWW-Authenticate"].startswith("Basic ")


def test_a_wrong_password_or_user_is_refused(auth_url, credentials):
    user, password = credentials
    for auth in ((user, password + "x"), (user, ""), ("elastic", password), (user.upper(), password)):
        assert requests.get(f"{auth_url}/_cluster/health", auth=auth, timeout=10).status_code == 401, auth[0]


def test_the_right_credentials_get_the_cluster_answer(stack, auth_url, credentials):
    through_proxy = requests.get(auth_url, auth=credentials, timeout=10)
    assert through_proxy.status_code == 200
    direct = requests.get(stack["elasticsearch"], timeout=10).json()
    assert through_proxy.json()["cluster_uuid"] == direct["cluster_uuid"]
    assert through_proxy.json()["version"]["number"] == direct["version"]["number"]
    health = requests.get(f"{auth_url}/_cluster/health", auth=credentials, timeout=10).json()
    assert health["status"] in ("green", "yellow")


def test_python_client_indexes_and_searches_with_the_env_credentials(auth_url):
    settings = elasticsearch_settings_from_env()
    assert (settings.url, settings.username) == (auth_url, os.environ["ELASTICSEARCH_USER"])
    es = settings.client()
    index = f"test_esproxy_{uuid.uuid4().hex[:12]}"
    try:
        assert es.ping()
        es.indices.create(index=index, mappings={"dynamic": "strict", "properties": {"user_id": {"type": "keyword"}}})
        ok, errors = helpers.bulk(
            es, ({"_index": index, "_id": str(i), "_source": {"user_id": str(i)}} for i in range(50)), refresh=True
        )
        assert (ok, errors) == (50, [])
        assert es.count(index=index)["count"] == 50
        # The same documents seen on the admin endpoint: the proxy forwards to that server.
        assert elasticsearch_admin_settings_from_env().client().count(index=index)["count"] == 50
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
    with pytest.raises(AuthenticationException):
        ElasticsearchSettings(auth_url).client().info()
    with pytest.raises(AuthenticationException):
        ElasticsearchSettings(auth_url, settings.username, "not-the-password").client().info()


def test_the_airflow_connection_authenticates_through_the_proxy(auth_url, credentials):
    from ecommerce_profiles.connections import elasticsearch_settings

    conn = json.loads(os.environ["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"])
    assert (conn["login"], conn["password"]) == credentials
    settings = elasticsearch_settings()  # what the operators and summarise_run use
    assert settings.url == auth_url
    assert settings.client().info()["cluster_name"]


def test_htpasswd_is_private_and_nginx_runs_unprivileged_from_the_stack_folder(stack, credentials):
    root = Path(os.environ["STACK_DIR"]) / "data" / "esproxy"
    htpasswd = root / "htpasswd"
    mode = htpasswd.stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    entry = htpasswd.read_text()
    user, password = credentials
    assert entry.startswith(f"{user}:$apr1$") and password not in entry
    pid = int((Path(os.environ["STACK_DIR"]) / "pids" / "esproxy.pid").read_text())
    # (nginx rewrites its process title, but keeps the arguments in it)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert f"-p {root}/ -c {root / 'nginx.conf'}" in cmdline
    # The master and its workers: never root, the same user that owns the 0600 htpasswd.
    group = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(p) == pid]
    assert group and {p.stat().st_uid for p in group} == {htpasswd.stat().st_uid}
    assert htpasswd.stat().st_uid != 0
    assert "/etc/nginx" not in (root / "nginx.conf").read_text()


def _pgid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def test_status_reports_esproxy_up_with_its_url(auth_url):
    assert_status_up("esproxy", auth_url)


def test_up_fails_clearly_when_the_esproxy_port_is_taken(tmp_path):
    # ELASTICSEARCH_PORT moves too (to a free port): nothing but the proxy is started here.
    assert_up_refuses_taken_port(
        tmp_path, "esproxy", "ELASTICSEARCH_AUTH_PORT", "ELASTICSEARCH_PORT", "http://localhost:{port}"
    )


def test_health_check_uses_credentials_without_putting_them_on_a_command_line(project_root):
    script = (project_root / "scripts" / "services" / "esproxy.sh").read_text()
    curl_lines = [line for line in script.splitlines() if "curl " in line]
    assert curl_lines and all(" -u " not in line and "--user " not in line for line in curl_lines)
    assert "openssl passwd -apr1 -stdin" in script
    # The health function really authenticates: with a wrong password it reports down.
    env = {**os.environ, "ELASTICSEARCH_PASSWORD": "wrong"}
    wrong = subprocess.run(
        ["bash", str(project_root / "scripts" / "stack.sh"), "status", "esproxy"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert wrong.returncode != 0 and "down" in wrong.stdout
