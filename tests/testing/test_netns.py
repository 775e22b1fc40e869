"""helexa.testing.netns: namespaces made, wired, partitioned, and always torn down."""

from __future__ import annotations

import subprocess

import pytest

from helexa.testing.netns import NetnsFleet, available, ip


def namespaces() -> set[str]:
    return {line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()}


def reachable(fleet: NetnsFleet, source: str, target: str) -> bool:
    address = fleet.host(target).address
    source_address = fleet.host(source).address
    probe = (
        f"import socket,sys; s=socket.socket(); s.settimeout(1); s.bind(('{source_address}', 0))"
    )
    # A TCP connect to a closed port: refused = reachable; a timeout = cut off.
    probe += f"\ntry: s.connect(('{address}', 9))\nexcept ConnectionRefusedError: sys.exit(0)\n"
    probe += "except OSError: sys.exit(1)\n"
    done = subprocess.run([*fleet.host(source).prefix, "python3", "-c", probe], timeout=30)
    return done.returncode == 0


def test_fleet_lifecycle() -> None:
    assert available() is None, "network namespaces are needed (root)"
    before = namespaces()
    with NetnsFleet.create(["a", "b"], gateway="gw") as fleet:
        made = namespaces() - before
        assert made == {f"{fleet.tag}-{n}" for n in ("switch", "gw", "a", "b")}
        assert fleet.host("gw").address == "10.213.0.2"
        assert fleet.host("a").address == "10.213.0.11"
        assert reachable(fleet, "gw", "a")
        fleet.partition("a")
        assert not reachable(fleet, "gw", "a")
        assert reachable(fleet, "gw", "b")
        fleet.heal("a")
        assert reachable(fleet, "gw", "a")
    assert namespaces() == before


def test_a_failed_create_leaves_nothing() -> None:
    before = namespaces()
    with pytest.raises(RuntimeError):
        NetnsFleet.create(["a", "a"])  # the second "a" collides
    assert namespaces() == before
