"""Usage errors from the framework come as one line ``error: ...``, exit code 2."""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error, run_cli


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--bogus"], ["--bogus", "ioplan --help"]),
        (["nonexistent-command"], ["nonexistent-command"]),
        (["plan"], ["case", "ioplan plan --help"]),
        (["plan", "x", "--out", "y", "--spacing-mm", "abc"], ["--spacing-mm"]),
        (["sirt", "single"], ["--mass-kg"]),
        (["registry", "columns", "--bogus"], ["--bogus", "ioplan registry columns"]),
    ],
)
def test_usage_errors_are_one_line(capsys, args, fragments):
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, *fragments)


def test_group_without_command_prints_its_help(capsys):
    code, out, err = run_cli(capsys, "sirt")
    assert code == 0 and "Usage: ioplan sirt" in out and not err.strip()


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    import ioplan.anatomy

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ioplan.anatomy, "load_case", interrupted)
    code, _, err = run_cli(capsys, "select", "somecase")
    assert code == 130 and err.strip() == "interrupted"


def test_broken_pipe_on_help_is_quiet(tmp_path):
    """``ioplan phantom --help | head -1`` must not end in a traceback."""
    import subprocess
    import sys

    proc = subprocess.run(
        f"{sys.executable} -m ioplan phantom --help | head -1",
        shell=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
