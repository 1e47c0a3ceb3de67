"""waveidp.loopback: waiting for a server stops at once, and says where to look, when it dies."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from waveidp.loopback import NotReady, free_port, wait_http


def test_a_server_that_exits_is_reported_at_once_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "print('starting'); print('port taken'); exit(3)"], stdout=out
        )
    t0 = time.monotonic()
    ends = "exited with code 3 before it answered; its log ends: port taken"
    with pytest.raises(NotReady, match=ends) as err:
        wait_http(f"http://127.0.0.1:{free_port()}/health", proc, timeout=30, log=log)
    assert time.monotonic() - t0 < 10
    assert err.value.fix == f"see its log {log}"


def test_a_port_nobody_listens_on_times_out_naming_the_last_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}/ready"
    with pytest.raises(NotReady, match=r"not ready after 0\.3s \(ConnectError") as err:
        wait_http(url, timeout=0.3)
    assert err.value.where == url


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    """An outgoing connection's local port comes from the ephemeral range; a server's port from
    there can be taken between the pick and the bind (a CI run lost a gateway to that)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(p < low for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))


def test_two_processes_picking_ports_at_once_never_get_the_same_one() -> None:
    """Each of several processes (a test run on several cores, a second `wave up`) takes ports
    that the others were given but have not bound yet."""
    script = "from waveidp.loopback import free_port; print(*[free_port() for _ in range(300)])"
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]
    picked = [int(p) for proc in procs for p in proc.communicate(timeout=60)[0].split()]
    assert len(picked) == 900 and len(set(picked)) == 900
