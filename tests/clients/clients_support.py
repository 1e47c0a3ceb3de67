"""One gateway in front of real engines for the client tests: the embedded llama-server
(SmolLM2-135M) twice over (as itself, and declared without Responses/Messages so the gateway
translates them to chat completions), `wave emulate` as a vLLM, and the test upstream for the
routes no engine here serves for real (audio, rerank)."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from support import running
from waveidp.loopback import free_port, wait_http

WAVE = Path(sys.executable).with_name("wave")
FAKE_UPSTREAM = Path(__file__).resolve().parent.parent / "gateway" / "fake_upstream.py"
KEY = "wave-clients-" + "k" * 32
LLAMA = "smollm2-135m-instruct"  # llama-server: Responses and Messages passed through
TRANSLATED = "smollm2-chat"  # the same llama-server, declared with chat only: translated
EMU = "emu"  # wave emulate, vLLM kind: tool calls, JSON schema, n, logprobs, stored responses
FAKE = "fake-audio"  # the test upstream, a generic OpenAI server: audio and rerank pass through
EMU_CONTEXT = 4096


@dataclass
class Fleet:
    url: str
    home: Path
    log: Path
    llama: str
    emu: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_engines(stack: contextlib.ExitStack, work: Path) -> tuple[str, str, str]:
    """llama-server, wave emulate and the test upstream; their base URLs."""
    from waveidp.engines.llamacpp import LlamaServerSpec
    from waveidp.engines.local_files import embedded_model_path, llama_tool

    spec = LlamaServerSpec(
        binary=llama_tool("llama-server"),
        model=embedded_model_path(),
        port=free_port(),
        alias=LLAMA,
        parallel=2,
        context=256,  # 128 tokens a slot: whatever max_tokens a request (or schemathesis) asks, it ends soon
        n_predict=8,
    )
    llama = stack.enter_context(running(spec.command(), log=work / "llama-server.log"))
    emu_port, fake_port = free_port(), free_port()
    emu = stack.enter_context(
        running(
            [WAVE, "emulate", "--model", EMU, "--step-ms", "1", "--prefill-ms", "2", "--port", str(emu_port),
             "--context", str(EMU_CONTEXT)],
            log=work / "emulate.log",
        )
    )  # fmt: skip
    fake = stack.enter_context(
        running(
            [sys.executable, FAKE_UPSTREAM, "--port", str(fake_port), "--name", "fake", "--model", FAKE],
            log=work / "fake.log",
        )
    )
    emu_url, fake_url = f"http://127.0.0.1:{emu_port}", f"http://127.0.0.1:{fake_port}"
    wait_http(spec.url + "/health", proc=llama, timeout=60)
    wait_http(emu_url + "/health", proc=emu, timeout=30)
    wait_http(fake_url + "/health", proc=fake, timeout=30)
    return spec.url, emu_url, fake_url


def fleet_file(path: Path, llama: str, emu: str, fake: str) -> Path:
    backend = {"engine": "llamacpp", "url": llama}
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "nodes": [
                    {
                        "name": "local",
                        "backends": [
                            {"name": "llama", **backend, "models": [LLAMA]},
                            {"name": "llama-chat", **backend, "models": [TRANSLATED], "routes": []},
                            {"name": "emu", "engine": "emulated", "url": emu, "models": [EMU]},
                            {"name": "fake", "engine": "openai", "url": fake, "models": [FAKE]},
                        ],
                    }
                ],
            }
        )
    )
    return path


def start_gateway(
    stack: contextlib.ExitStack, home: Path, *args: str, ready: str = "/ready"
) -> tuple[str, Path, object]:
    """`wave serve` with `args`; its URL, log and process once `ready` answers."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"gateway-{port}.log"
    proc = stack.enter_context(
        running(
            [WAVE, "serve", "--port", str(port), *args],
            log=log,
            env={"WAVE_HOME": str(home), "WAVE_API_KEY": KEY},
        )
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + ready, proc=proc, timeout=30, log=log)
    return url, log, proc
