"""The local Mailpit (scripts/services/mailpit.sh): the alerts' SMTP server and the HTTP API the
alert tests read. A mail sent by the SMTP provider's SmtpNotifier through the ``smtp_default``
connection of .env arrives and is found by its recipient."""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
import urllib.request
import uuid

from .stack_cli import assert_status_up, run_stack, unused_port


def api(port: str | int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.load(response)


def test_mailpit_is_up_on_loopback(stack):
    assert_status_up(
        "mailpit",
        f"http://localhost:{os.environ['MAILPIT_UI_PORT']} (SMTP localhost:{os.environ['MAILPIT_SMTP_PORT']})",
    )
    assert "messages" in api(os.environ["MAILPIT_UI_PORT"], "/api/v1/messages?limit=1")


def test_a_mail_through_the_smtp_connection_arrives(stack):
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    address = f"stack-test-{uuid.uuid4().hex[:10]}@ecommerce-profiles.test"
    SmtpNotifier(to=address, subject="stack test", html_content="<p>hello</p>", smtp_conn_id="smtp_default").notify({})
    query = urllib.parse.quote(f"to:{address}")
    found = api(os.environ["MAILPIT_UI_PORT"], f"/api/v1/search?query={query}")["messages"]
    assert [m["Subject"] for m in found] == ["stack test"]
    assert found[0]["From"]["Address"] == "airflow@ecommerce-profiles.local"


def test_a_private_mailpit_starts_and_stops(tmp_path):
    ports = {
        "STACK_DIR": str(tmp_path / "stack"),
        "MAILPIT_SMTP_PORT": str(unused_port()),
        "MAILPIT_UI_PORT": str(unused_port()),
    }
    try:
        up = run_stack("up", "mailpit", env=ports)
        assert up.returncode == 0, up.stderr
        assert api(ports["MAILPIT_UI_PORT"], "/api/v1/messages")["total"] == 0
    finally:
        down = run_stack("down", "mailpit", env=ports)
    assert down.returncode == 0, down.stderr
    assert not (tmp_path / "stack" / "pids" / "mailpit.pid").exists()


def test_up_refuses_a_taken_port(tmp_path):
    """A dummy listener on the SMTP port: `up` names service and port and starts nothing."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        env = {
            "STACK_DIR": str(tmp_path / "stack"),
            "MAILPIT_SMTP_PORT": str(taken),
            "MAILPIT_UI_PORT": str(unused_port()),
        }
        result = run_stack("up", "mailpit", env=env)
    assert result.returncode != 0
    assert f"port {taken} is already taken" in result.stderr and "mailpit (" in result.stderr
    assert not (tmp_path / "stack" / "pids" / "mailpit.pid").exists()
