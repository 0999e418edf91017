"""Package build hook: the browser viewer (``frontend/``) is built with npm into the package.

``pip install -e ".[dev]"`` (or building a wheel) runs ``npm ci && npm run build`` in
``frontend/``, which bundles the viewer and NiiVue into ``src/ioplan/web/static/`` (git
ignores it), as Jupyter extensions build their front ends. The build is skipped when the
bundle is newer than every front-end source, or when ``IOPLAN_SKIP_FRONTEND=1``. Without
Node.js and npm, or when npm fails, the install goes on with a warning: ``ioplan serve``
then works without the viewer and its pages say so. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
FRONTEND = ROOT / "frontend"
BUNDLE = ROOT / "src" / "ioplan" / "web" / "static" / "viewer.js"


def _warn(message: str) -> None:
    print(f"ioplan: {message}", file=sys.stderr)


def _sources() -> list[Path]:
    files = [FRONTEND / "package.json", FRONTEND / "package-lock.json", FRONTEND / "build.mjs"]
    return files + sorted((FRONTEND / "src").rglob("*"))


def build_frontend() -> None:
    """Run npm in ``frontend/`` unless the bundle is up to date (see the module)."""
    if os.environ.get("IOPLAN_SKIP_FRONTEND") == "1" or not (FRONTEND / "package.json").is_file():
        return
    if BUNDLE.is_file():
        newest = max(p.stat().st_mtime for p in _sources() if p.is_file())
        if BUNDLE.stat().st_mtime >= newest and (FRONTEND / "node_modules").is_dir():
            return
    npm = shutil.which("npm")
    if npm is None:
        _warn("npm not found: the web viewer is not built (ioplan serve works without it)")
        return
    try:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True)
        subprocess.run([npm, "run", "build"], cwd=FRONTEND, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        _warn(f"building the web viewer failed ({exc}); ioplan serve works without it")


class BuildPyWithFrontend(build_py):
    """``build_py`` that builds the viewer first (also run by editable installs)."""

    def run(self) -> None:
        """Build the viewer, then the package."""
        build_frontend()
        super().run()


setup(cmdclass={"build_py": BuildPyWithFrontend})
