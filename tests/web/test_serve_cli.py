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


def test_loopback_names():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        check_bind(host, 8000, None)
