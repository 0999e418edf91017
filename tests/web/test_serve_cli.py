"""``ioplan serve``: refusals before anything is bound (one line, exit code 2)."""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error, run_cli
from ioplan.web import check_bind


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--host", "0.0.0.0"], "--token"),
        (["--host", "192.168.1.10"], "not loopback"),
        (["--host", "::"], "--token"),
        (["--port", "0"], "--port"),
        (["--port", "70000"], "--port"),
        (["--token", "short"], "at least 16"),
        (["--cases", "no/such/folder"], "no such folder"),
        (["--max-upload-mb", "0"], "--max-upload-mb"),
        (["--registry", "ftp://host/db"], "postgresql://"),
        (["--registry", ""], "empty"),
    ],
)
def test_serve_refuses_with_one_line(capsys, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IOPLAN_TOKEN", raising=False)

    def never(*a, **k):  # pragma: no cover - reached only if a refusal is missing
        raise AssertionError("the server was started")

    monkeypatch.setattr("ioplan.web.serve", never)
    code, _, err = run_cli(capsys, "serve", *args)
    assert_one_line_error(code, err, fragment)


def test_serve_starts_on_loopback_and_with_a_token_elsewhere(capsys, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("ioplan.web.serve", lambda cases, **kw: calls.append((cases, kw)))
    monkeypatch.delenv("IOPLAN_TOKEN", raising=False)
    assert run_cli(capsys, "serve", "--cases", tmp_path)[0] == 0
    assert calls[-1][1]["host"] == "127.0.0.1" and calls[-1][1]["token"] is None
    monkeypatch.setenv("IOPLAN_TOKEN", "t" * 20)
    assert run_cli(capsys, "serve", "--cases", tmp_path, "--host", "0.0.0.0")[0] == 0
    assert calls[-1][1]["token"] == "t" * 20


def test_serve_passes_the_registry_on(capsys, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("ioplan.web.serve", lambda cases, **kw: calls.append(kw))
    monkeypatch.delenv("IOPLAN_TOKEN", raising=False)
    db = str(tmp_path / "r.sqlite")
    # sweep of session 51: a registry that does not exist, or a file that is none, served
    # a dashboard failing on every visit; refused now, and checking creates no database
    code, _, err = run_cli(capsys, "serve", "--cases", tmp_path, "--registry", db)
    assert_one_line_error(code, err, "r.sqlite")
    assert not (tmp_path / "r.sqlite").exists() and not calls
    (tmp_path / "notes.txt").write_text("not a database")
    code, _, err = run_cli(capsys, "serve", "--cases", tmp_path, "--registry",
                           tmp_path / "notes.txt")  # fmt: skip
    assert_one_line_error(code, err, "notes.txt")
    assert run_cli(capsys, "registry", "init", "--db", db)[0] == 0
    assert run_cli(capsys, "serve", "--cases", tmp_path, "--registry", db)[0] == 0
    assert calls[-1]["registry_db"] == db
    assert run_cli(capsys, "serve", "--cases", tmp_path)[0] == 0
    assert calls[-1]["registry_db"] is None


def test_create_app_keeps_the_registry_setting(tmp_path):
    from ioplan.web import create_app

    assert create_app(tmp_path, registry_db=tmp_path / "r.sqlite").state.registry_db == str(
        tmp_path / "r.sqlite"
    )
    assert create_app(tmp_path).state.registry_db is None


def test_loopback_names():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        check_bind(host, 8000, None)


def test_serve_on_a_port_in_use_is_one_line(capsys, tmp_path, monkeypatch):
    """It said "serving ... at" and then died with uvicorn's ERROR line and exit 3."""
    import socket

    def never(*a, **k):  # pragma: no cover - reached only if the refusal is missing
        raise AssertionError("the server was started")

    monkeypatch.setattr("ioplan.web.serve", never)
    monkeypatch.delenv("IOPLAN_TOKEN", raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run_cli(capsys, "serve", "--cases", tmp_path, "--port", port)
    assert_one_line_error(code, err, f"port {port}", "in use")
    assert "serving" not in out + err
