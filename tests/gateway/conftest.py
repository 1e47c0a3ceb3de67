"""Fixtures that start real processes on loopback: fake OpenAI upstreams and `wave serve`."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gateway_support import API_KEY, HERE, WAVE, auth  # noqa: F401  (tests import them from there)

from support import running
from waveidp.loopback import free_port, wait_http


@dataclass
class Proc:
    url: str
    proc: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def upstream_starter(stack: contextlib.ExitStack, workdir: Path) -> Callable[..., Proc]:
    """`start(name="a", itl=0.01, ...)` starts tests/gateway/fake_upstream.py until `stack` closes."""

    def start(name: str = "fake", **opts: object) -> Proc:
        port = free_port()
        cmd: list[str] = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(port), "--name", name]
        for k, v in opts.items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                cmd.append(flag)
            elif isinstance(v, list | tuple):
                for item in v:
                    cmd += [flag, str(item)]
            else:
                cmd += [flag, str(v)]
        log = workdir / f"upstream-{name}-{port}.log"
        proc = stack.enter_context(running(cmd, log=log))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc=proc, timeout=20)
        return Proc(url, proc, log)

    return start


def gateway_starter(stack: contextlib.ExitStack, workdir: Path) -> Callable[..., Proc]:
    """`start([url, ...], "--policy", "round-robin")` starts `wave serve` and waits for /ready."""

    def start(upstreams: list[str], *args: str, ready: bool = True) -> Proc:
        port = free_port()
        cmd: list[str] = [str(WAVE), "serve", "--port", str(port)]
        for u in upstreams:
            cmd += ["--upstream", u]
        cmd += list(args)
        log = workdir / f"gateway-{port}.log"
        proc = stack.enter_context(running(cmd, log=log, env={"WAVE_API_KEY": API_KEY}))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/ready" if ready else url + "/health", proc=proc, timeout=20)
        return Proc(url, proc, log)

    return start


@pytest.fixture
def fake_upstream(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    with contextlib.ExitStack() as stack:
        yield upstream_starter(stack, tmp_path)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    with contextlib.ExitStack() as stack:
        yield gateway_starter(stack, tmp_path)


@pytest.fixture(scope="module")
def module_processes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Callable[..., Proc], Callable[..., Proc]]]:
    """(upstream starter, gateway starter) whose processes live as long as the test module: for
    tests that only read from a gateway, so that each does not pay for starting one."""
    workdir = tmp_path_factory.mktemp("module-processes")
    with contextlib.ExitStack() as stack:
        yield upstream_starter(stack, workdir), gateway_starter(stack, workdir)
