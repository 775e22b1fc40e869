"""rpm/helexa.spec: built for real with rpmbuild, linted with rpmlint, contents checked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helexa import __version__
from helexa.config.fleet import FleetConfig
from helexa.config.loader import load_toml
from helexa.config.models import ModelsConfig
from helexa.neuron.config import load_neuron_config

RPM_DIR = Path(__file__).resolve().parents[2] / "rpm"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rpmbuild")
    done = subprocess.run(
        [str(RPM_DIR / "build.sh"), str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _listing(package: Path) -> dict[str, tuple[str, str, str]]:
    """path -> (mode string, owner, group) from `rpm -qlvp`."""
    out = subprocess.run(
        ["rpm", "-qlvp", str(package)], capture_output=True, text=True, check=True
    ).stdout
    listing = {}
    for line in out.splitlines():
        fields = line.split()
        listing[fields[-1]] = (fields[0], fields[2], fields[3])
    return listing


def test_builds_the_srpm_and_both_noarch_packages(built: Path) -> None:
    rpms = sorted(p.name for p in (built / "RPMS" / "noarch").glob("*.rpm"))
    assert rpms == [
        f"helexa-{__version__}-1.noarch.rpm",
        f"helexa-neuron-{__version__}-1.noarch.rpm",
    ]
    assert [p.name for p in (built / "SRPMS").glob("*.rpm")] == [f"helexa-{__version__}-1.src.rpm"]


def test_packages_hold_units_configs_and_modes(built: Path) -> None:
    noarch = built / "RPMS" / "noarch"
    gateway = _listing(noarch / f"helexa-{__version__}-1.noarch.rpm")
    neuron = _listing(noarch / f"helexa-neuron-{__version__}-1.noarch.rpm")
    assert gateway["/usr/bin/helexa"][0] == "-rwxr-xr-x"
    assert "/usr/lib/systemd/system/helexa-gateway.service" in gateway
    assert "/usr/lib/sysusers.d/helexa.conf" in gateway
    assert "/usr/lib/firewalld/services/helexa-gateway.xml" in gateway
    assert gateway["/etc/helexa"] == ("drwxr-x---", "root", "helexa")
    for config in ("/etc/helexa/fleet.toml", "/etc/helexa/models.toml"):
        assert gateway[config] == ("-rw-r-----", "root", "helexa")
    assert any(p.endswith("/helexa/templates/helexa-neuron.service.j2") for p in gateway)
    assert "/usr/lib/systemd/system/helexa-neuron.service" in neuron
    assert "/usr/lib/firewalld/services/helexa-neuron.xml" in neuron
    assert neuron["/etc/helexa/neuron.toml"] == ("-rw-r-----", "root", "helexa")
    configs = subprocess.run(
        ["rpm", "-qcp", str(noarch / f"helexa-neuron-{__version__}-1.noarch.rpm")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert configs == ["/etc/helexa/neuron.toml"]
    scripts = subprocess.run(
        ["rpm", "-qp", "--scripts", str(noarch / f"helexa-neuron-{__version__}-1.noarch.rpm")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "systemctl --no-reload preset helexa-neuron.service" in scripts


def test_rpmlint_has_no_errors(built: Path) -> None:
    packages = [str(p) for p in built.glob("*RPMS/**/*.rpm")]
    rpmlintrc, spec = RPM_DIR / "helexa.rpmlintrc", RPM_DIR / "helexa.spec"
    done = subprocess.run(
        ["rpmlint", "-r", str(rpmlintrc), str(spec), *packages],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 errors" in done.stdout


def test_shipped_default_configs_validate(tmp_path: Path) -> None:
    load_toml(RPM_DIR / "fleet.toml", FleetConfig)
    load_toml(RPM_DIR / "models.toml", ModelsConfig)
    neuron = load_neuron_config(RPM_DIR / "neuron.toml")
    assert neuron.neuron.listen == "127.0.0.1:13131"
