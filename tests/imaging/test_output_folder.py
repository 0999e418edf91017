"""``check_output_folder``: unwritable output folders are refused at once, leaving nothing."""

from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest

from ioplan.errors import IoplanError, OutputExistsError
from ioplan.imaging import (
    Grid,
    OutputNotWritableError,
    Volume,
    check_output_folder,
    staged_output_folder,
    write_nifti,
)


def _listing(folder):
    return sorted(p.name for p in folder.rglob("*"))


def test_a_path_under_a_file_is_refused_and_nothing_is_created(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    before = _listing(tmp_path)
    with pytest.raises(OutputNotWritableError, match=r"notes\.txt") as info:
        check_output_folder(tmp_path / "notes.txt" / "out" / "deeper", overwrite=False)
    assert isinstance(info.value, IoplanError) and isinstance(info.value, PermissionError)
    assert "not a folder" in str(info.value)
    assert _listing(tmp_path) == before
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_path_itself_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("mine")
    with pytest.raises(OutputExistsError, match="not a folder"):
        check_output_folder(tmp_path / "out", overwrite=True)
    assert (tmp_path / "out").read_text() == "mine"


def test_a_folder_that_holds_files_needs_overwrite_and_says_the_flag(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "plan.json").write_text("{}")
    with pytest.raises(OutputExistsError) as info:
        check_output_folder(tmp_path / "out", overwrite=False)
    assert "--overwrite" in str(info.value) and "overwrite=True" not in str(info.value)
    assert check_output_folder(tmp_path / "out", overwrite=True) == tmp_path / "out"


def test_a_writable_new_folder_is_accepted_and_not_created(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output_folder(target, overwrite=False) == target
    assert _listing(tmp_path) == []  # neither the folder nor the probe is left behind


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="running as root: chmod does not stop root from writing",
)
@pytest.mark.parametrize("sub", ["new", "new/deeper", ""])
def test_a_read_only_parent_is_refused(tmp_path, sub):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(OutputNotWritableError, match="permission denied"):
            check_output_folder(parent / sub if sub else parent, overwrite=True)
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(stat.S_IRWXU)


def test_a_read_only_file_system_is_refused(tmp_path, monkeypatch):
    """A read-only mount cannot be made in a test; the probe's EROFS is what it would raise."""
    import ioplan.imaging._io as io

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(io.tempfile, "mkdtemp", read_only)
    with pytest.raises(OutputNotWritableError, match="read-only file system"):
        check_output_folder(tmp_path / "out", overwrite=False)


def test_single_file_writers_refuse_a_file_in_the_path(tmp_path):
    (tmp_path / "f").write_text("x")
    v = Volume(np.zeros((2, 2, 2), np.uint8), Grid((2, 2, 2), (1.0, 1.0, 1.0)))
    with pytest.raises(OutputNotWritableError, match="not a folder"):
        write_nifti(v, tmp_path / "f" / "v.nii.gz")
    assert (tmp_path / "f").read_text() == "x"


def test_an_interrupted_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with staged_output_folder(tmp_path / "out", overwrite=False) as tmp:
            (tmp / "plan.json").write_text("{")  # half-way through the outputs
            raise KeyboardInterrupt
    assert _listing(tmp_path) == []


def test_staged_outputs_replace_their_namesakes_and_keep_other_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("old")
    (out / "mine.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        with staged_output_folder(out, overwrite=False):
            pass  # pragma: no cover - refused before the block runs
    with staged_output_folder(out, overwrite=True) as tmp:
        (tmp / "report.html").write_text("new")
        assert (out / "report.html").read_text() == "old"  # nothing moved in yet
    assert (out / "report.html").read_text() == "new"
    assert (out / "mine.txt").read_text() == "mine"
    assert _listing(tmp_path) == ["mine.txt", "out", "report.html"]


def test_a_new_staged_folder_gets_the_usual_permissions(tmp_path):
    """Made with mkdir (the umask applies), not mkdtemp (always 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    with staged_output_folder(tmp_path / "out", overwrite=False) as tmp:
        (tmp / "a").write_text("a")
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask
