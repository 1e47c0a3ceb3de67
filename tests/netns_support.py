"""A test fleet of hosts in network namespaces, made with `ip netns` and veth (as root, as CI runs).

    with TestNet() as net:                       # namespaces wave-<pid>-<host>, always removed
        pg = net.add_host("pg")                  # 10.77.0.N/24 on one bridge of this run's own
        e3 = net.add_host("e3", impairable=True)
        proc = e3.start(["wave", "emulate", ...], log=path)
        e3.link.down(); e3.link.up(); e3.link.impair(200, 0.05); e3.link.clear()

Each run has its own switch namespace holding the bridge, so runs never see each other (their
addresses may repeat). Names carry the creating process's pid: a run that died without cleaning
up is swept by the next one (`sweep`). `/etc/netns/<ns>/hosts` gives each host names (what
`ip netns exec` mounts over /etc/hosts), e.g. `redis` and `postgres` as a rendered file expects.

Delay and loss use `tc netem` where the kernel has it; where it does not (CONFIG_NET_SCH_NETEM
unset, as on this machine), an impairable host is wired through `netns_wire.py`, a user-space link
that does the same to the frames leaving the host.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.77.0"
WIRE = Path(__file__).with_name("netns_wire.py")
_NAME = re.compile(r"^wave-(\d+)-[a-z0-9]+$")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def available() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.getuid() != 0:
        return "needs root (ip netns)"
    if shutil.which("ip") is None:
        return "needs iproute2 (apt-get install iproute2)"
    probe = f"wave-{os.getpid()}-probe{uuid.uuid4().hex[:4]}"
    r = ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"ip netns add failed: {r.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def netem_available() -> bool:
    probe = f"wave-{os.getpid()}-netem{uuid.uuid4().hex[:4]}"
    ip("netns", "add", probe)
    try:
        r = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                probe,
                "tc",
                "qdisc",
                "add",
                "dev",
                "lo",
                "root",
                "netem",
                "delay",
                "1ms",
            ],
            capture_output=True,
        )
        return r.returncode == 0
    finally:
        ip("netns", "del", probe, check=False)


def sweep() -> None:
    """Remove the namespaces of runs whose process is gone."""
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = _NAME.match(name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            _delete(name)


def _delete(ns: str) -> None:
    pids = ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        if pid == str(os.getpid()):
            continue  # a driver that moved itself into the namespace (`enter`)
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "del", ns, check=False)
    shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


def enter(ns: str) -> None:
    """Move this process (its calling thread: call before any other) into namespace `ns`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


@dataclass
class Link:
    """The cable between a host and the switch."""

    host_ns: str
    switch_ns: str
    switch_dev: str
    wire: subprocess.Popen[str] | None = None

    def _say(self, command: str) -> None:
        assert self.wire is not None and self.wire.stdin is not None and self.wire.stdout is not None
        self.wire.stdin.write(command + "\n")
        self.wire.stdin.flush()
        answer = self.wire.stdout.readline().strip()
        if not answer.startswith("ok"):
            raise RuntimeError(f"wire: {command}: {answer}")

    def down(self) -> None:
        if self.wire is not None:
            self._say("down")
        else:
            ip("-n", self.switch_ns, "link", "set", self.switch_dev, "down")

    def up(self) -> None:
        if self.wire is not None:
            self._say("up")
        else:
            ip("-n", self.switch_ns, "link", "set", self.switch_dev, "up")

    def impair(self, delay_ms: float, loss: float, seed: int = 1) -> None:
        """Frames leaving the host wait `delay_ms` and are lost with probability `loss`."""
        if self.wire is not None:
            self._say(f"impair {delay_ms} {loss} {seed}")
            return
        subprocess.run(
            ["ip", "netns", "exec", self.host_ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem",
             "delay", f"{delay_ms}ms", "loss", f"{loss * 100}%"],
            check=True,
        )  # fmt: skip

    def clear(self) -> None:
        if self.wire is not None:
            self._say("clear")
        else:
            subprocess.run(
                ["ip", "netns", "exec", self.host_ns, "tc", "qdisc", "del", "dev", "eth0", "root"],
                check=False,
            )


@dataclass
class Host:
    name: str
    ns: str
    ip: str
    link: Link
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cmd(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *(str(a) for a in argv)]

    def start(
        self, argv: Sequence[str | os.PathLike[str]], *, log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        out = open(log, "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            self.cmd(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        out.close()
        self.procs.append(proc)
        return proc

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Every process of the host (a host that crashed, with `SIGKILL`)."""
        for pid in ip("netns", "pids", self.ns, check=False).stdout.split():
            if pid == str(os.getpid()):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), sig)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        self.procs = [p for p in self.procs if p.poll() is None]

    def hosts_file(self, names: dict[str, str]) -> None:
        """/etc/hosts as processes of this host see it: `names` (name -> address) besides localhost."""
        folder = Path("/etc/netns") / self.ns
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", *(f"{addr} {name}" for name, addr in names.items())]
        (folder / "hosts").write_text("\n".join(lines) + "\n")


class TestNet:
    """A switch and the hosts on it; everything removed on exit, whatever happened."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        sweep()
        self.prefix = f"wave-{os.getpid()}"
        self.switch = f"{self.prefix}-sw"
        self.hosts: dict[str, Host] = {}
        self._netem: bool | None = None

    def __enter__(self) -> TestNet:
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_host(self, name: str, *, impairable: bool = False) -> Host:
        if not re.fullmatch(r"[a-z0-9]{1,8}", name):
            raise ValueError(f"host name {name!r}: 1-8 lower-case letters or digits")
        ns = f"{self.prefix}-{name}"
        address = f"{SUBNET}.{len(self.hosts) + 1}"
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
        port = f"v{name}"
        if self._netem is None and impairable:
            self._netem = netem_available()
        link = Link(ns, self.switch, port)
        if impairable and not self._netem:
            link.wire = subprocess.Popen(
                [sys.executable, str(WIRE), ns, "eth0", self.switch, port],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            assert link.wire.stdout is not None
            ready = link.wire.stdout.readline().strip()
            if ready != "ready":
                raise RuntimeError(f"netns_wire.py did not start: {ready!r}")
        else:
            ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", self.switch)
        ip("-n", self.switch, "link", "set", port, "master", "br0")
        ip("-n", self.switch, "link", "set", port, "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        host = Host(name, ns, address, link)
        self.hosts[name] = host
        return host

    def wait_reachable(self, src: Host, dst: Host, port: int, timeout: float = 30.0) -> None:
        """Until a TCP connect from `src` to `dst:port` succeeds."""
        probe = f"import socket; socket.create_connection(('{dst.ip}', {port}), timeout=1).close()"
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run(src.cmd([sys.executable, "-c", probe]), capture_output=True)
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dst.name}:{port} not reachable from {src.name} after {timeout}s")
            time.sleep(0.1)

    def close(self) -> None:
        for host in self.hosts.values():
            if host.link.wire is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(host.link.wire.pid, signal.SIGKILL)
                host.link.wire.wait()
            for p in host.procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            _delete(host.ns)
            for p in host.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
        _delete(self.switch)
        self.hosts = {}
