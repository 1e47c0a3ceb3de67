"""A running gateway with security on, in front of a real llama-server (SmolLM2-135M) and a slow
test upstream; each started on 127.0.0.1 with ephemeral ports and killed at the end."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support import running
from waveidp.loopback import free_port, wait_http

WAVE = Path(sys.executable).with_name("wave")
FAKE_UPSTREAM = Path(__file__).resolve().parent.parent / "gateway" / "fake_upstream.py"
BOOTSTRAP_KEY = "wave-bootstrap-" + "b" * 32
ADMIN_KEY = "wave-admin-" + "0123456789abcdef" * 3  # passes check_strength
MODEL = "smollm2-135m-instruct"
SLOW_MODEL = "slow-model"
SLOW_TTFT_S = 4


@dataclass
class RunningGateway:
    url: str
    home: Path
    log: Path
    proc: subprocess.Popen

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_llama(stack: contextlib.ExitStack, workdir: Path) -> str:
    from waveidp.engines.llamacpp import LlamaServerSpec
    from waveidp.engines.local_files import embedded_model_path, llama_tool

    spec = LlamaServerSpec(
        binary=llama_tool("llama-server"),
        model=embedded_model_path(),
        port=free_port(),
        alias=MODEL,
        threads=1,
        parallel=4,
        context=4096,
        n_predict=8,
    )
    proc = stack.enter_context(running(spec.command(), log=workdir / "llama-server.log"))
    wait_http(spec.url + "/health", proc=proc, timeout=60)
    return spec.url


def start_slow_upstream(stack: contextlib.ExitStack, workdir: Path) -> str:
    port = free_port()
    cmd = [
        sys.executable,
        FAKE_UPSTREAM,
        "--port",
        str(port),
        "--name",
        "slow",
        "--model",
        SLOW_MODEL,
        "--ttft",
        str(SLOW_TTFT_S),
    ]
    proc = stack.enter_context(running(cmd, log=workdir / "slow.log"))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", proc=proc, timeout=20)
    return url


def start_gateway(
    stack: contextlib.ExitStack,
    home: Path,
    upstreams: list[str],
    *args: str,
    scheme: str = "http",
    env: dict[str, str] | None = None,
) -> RunningGateway:
    port = free_port()
    cmd: list[str | Path] = [WAVE, "serve", "--port", str(port)]
    for u in upstreams:
        cmd += ["--upstream", u]
    cmd += list(args)
    log = home / f"gateway-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    environment = {
        "WAVE_HOME": str(home),
        "WAVE_API_KEY": BOOTSTRAP_KEY,
        "WAVE_ADMIN_KEY": ADMIN_KEY,
        **(env or {}),
    }
    proc = stack.enter_context(running(cmd, log=log, env=environment))
    url = f"{scheme}://127.0.0.1:{port}"
    cafile = env.get("SSL_CERT_FILE") if env else None
    verify = ssl.create_default_context(cafile=cafile) if cafile else True
    wait_http(url + "/ready", proc, timeout=30, verify=verify, log=log)
    return RunningGateway(url, home, log, proc)


def wave_cli(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WAVE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "WAVE_HOME": str(home)},
    )
