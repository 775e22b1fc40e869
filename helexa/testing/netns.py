"""A test fleet of hosts as Linux network namespaces on one machine (needs root + iproute2).

    with NetnsFleet.create(["n1", "n2", "n3"], gateway="gw") as fleet:
        fleet.host("n1").address          # 10.213.0.11
        fleet.host("n1").exec(["python", ...])   # the command prefix runs it inside
        fleet.partition("n1"); fleet.heal("n1")

Layout: a "switch" namespace holds a bridge; each host namespace is joined to it
by a veth pair and gets its own address in 10.213.0.0/24. Nothing is created
outside namespaces this helper made, and nothing but their own addresses is
reachable from them. Teardown (also on a failed create) kills what still runs
inside those namespaces and deletes them, which removes every veth and the bridge.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

CLONE_NEWNET = 0x40000000
SUBNET = "10.213.0"
GATEWAY_OCTET = 2
FIRST_HOST_OCTET = 11


class NetnsUnavailable(RuntimeError):
    """`ip netns` cannot be used here (not root, no iproute2, no namespace support)."""


def ip(*args: str) -> str:
    """Run `ip ARGS`; raise with its stderr on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def available() -> str | None:
    """None when network namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"hxprobe{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
    except (OSError, RuntimeError) as exc:
        return f"cannot create a network namespace: {exc}"
    ip("netns", "del", probe)
    return None


def enter_namespace(namespace: str) -> None:
    """Move the calling thread (only it) into `namespace`: its new sockets live there."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str
    switch_port: str  # the veth end inside the switch namespace (down = partitioned)

    @property
    def prefix(self) -> list[str]:
        """Put before a command to run it inside this host."""
        return ["ip", "netns", "exec", self.namespace]

    def url(self, port: int) -> str:
        return f"http://{self.address}:{port}"

    def executor(self, workers: int = 4) -> ThreadPoolExecutor:
        """Threads inside this host: blocking client code run there talks from its address
        (the test process itself stays where it is)."""
        return ThreadPoolExecutor(
            workers,
            thread_name_prefix=self.namespace,
            initializer=enter_namespace,
            initargs=(self.namespace,),
        )


@dataclass
class NetnsFleet:
    tag: str
    hosts: dict[str, Host] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.tag}-switch"

    @classmethod
    def create(cls, names: list[str], gateway: str = "gw") -> NetnsFleet:
        """Hosts `names` (10.213.0.11, .12, ...) and `gateway` (10.213.0.2) on one bridge."""
        fleet = cls(tag=f"hx{secrets.token_hex(2)}")
        try:
            fleet._add_switch()
            fleet._add_host(gateway, GATEWAY_OCTET, 0)
            for index, name in enumerate(names, start=1):
                fleet._add_host(name, FIRST_HOST_OCTET + index - 1, index)
        except BaseException:
            fleet.teardown()
            raise
        return fleet

    def host(self, name: str) -> Host:
        return self.hosts[name]

    def partition(self, name: str) -> None:
        """Cut the host off the bridge (its cable pulled): packets vanish, nothing resets."""
        ip("-n", self.switch, "link", "set", self.hosts[name].switch_port, "down")

    def heal(self, name: str) -> None:
        ip("-n", self.switch, "link", "set", self.hosts[name].switch_port, "up")

    def teardown(self) -> None:
        """Kill what runs in our namespaces, then delete them (veths and bridge go too)."""
        for namespace in reversed(self.namespaces):
            with contextlib.suppress(RuntimeError, OSError):
                for pid in ip("netns", "pids", namespace).split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(RuntimeError, OSError):
                ip("netns", "del", namespace)
        self.namespaces.clear()

    def _add_namespace(self, namespace: str) -> None:
        ip("netns", "add", namespace)
        self.namespaces.append(namespace)
        ip("-n", namespace, "link", "set", "lo", "up")

    def _add_switch(self) -> None:
        self._add_namespace(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")

    def _add_host(self, name: str, octet: int, index: int) -> None:
        namespace = f"{self.tag}-{name}"
        self._add_namespace(namespace)
        port = f"p{index}"  # short: interface names are at most 15 characters
        # Created inside the switch namespace, the host end then moved to its own.
        ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0")
        ip("-n", self.switch, "link", "set", "eth0", "netns", namespace)
        ip("-n", self.switch, "link", "set", port, "master", "br0")
        ip("-n", self.switch, "link", "set", port, "up")
        address = f"{SUBNET}.{octet}"
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        self.hosts[name] = Host(name, namespace, address, port)

    def __enter__(self) -> NetnsFleet:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.teardown()
