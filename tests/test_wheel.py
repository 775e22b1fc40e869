"""The built wheel: the top-level templates/ ship inside it as helexa/templates, and an
installed copy renders from there (a source checkout renders from templates/ itself)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = ["wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(REPO)]
    done = subprocess.run(
        [sys.executable, "-m", "pip", *build],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("helexa-*.whl")
    return built


def test_the_wheel_ships_every_template_under_helexa_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = sorted(p.name for p in (REPO / "templates").glob("*.j2"))
    assert len(templates) >= 7  # units, neuron.toml, sysusers, firewalld, the supervisor
    assert [t for t in templates if f"helexa/templates/{t}" not in names] == []
    assert not any(name.startswith("templates/") for name in names)  # no top-level package
    assert "helexa/ui/index.html" in names and "helexa/py.typed" in names


def test_an_installed_wheel_renders_from_its_own_templates(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what installing a pure-Python wheel lays out
    code = (
        "from helexa.deploy import render\n"
        "print(render.templates_dir())\n"
        "print(render.packaged_files()['helexa.sysusers'], end='')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    where, rendered = done.stdout.split("\n", 1)
    assert where == str(site / "helexa" / "templates")
    assert rendered == (REPO / "rpm" / "helexa.sysusers").read_text()
