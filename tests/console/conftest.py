"""One `wave up` stack for all the console's browser tests (starting it costs seconds): the embedded
llama-server with SmolLM2-135M and two `wave emulate` engines, one of which a test kills."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from console_support import (
    ADMIN_KEY,
    API_KEY,
    EMBEDDED_MODEL,
    EMU_MODEL,
    WAVE,
    Stack,
    browser,
    wave_up,
)
from playwright.sync_api import BrowserContext, Page

from support import running
from waveidp.loopback import free_port, wait_http

FLEET = """
version: 1
name: console-test
nodes:
  - name: lab
    address: 127.0.0.1
    devices:
      - {{id: gpu0, hardware: rtx-5070-ti}}
      - {{id: cpu, hardware: ryzen-9-9900x}}
    backends:
      - name: embedded
        engine: embedded
        url: "http://127.0.0.1:{local}"
        max_concurrency: 2
        devices: [cpu]
        models: [{{name: {embedded}, model: smollm2-135m, quant: q8_0}}]
      - name: gpu-emu
        engine: vllm
        url: "http://127.0.0.1:{emu}"
        devices: [gpu0]
        max_concurrency: 8
        models: [{{name: {emu_model}, model: llama-3.2-3b, quant: bf16}}]
      - name: doomed
        engine: vllm
        url: "http://127.0.0.1:{doomed}"
        max_concurrency: 8
        models: [{emu_model}]
"""


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("console-home")
    emu, doomed, local, port = free_port(), free_port(), free_port(), free_port()
    emulate = [WAVE, "emulate", "--model", EMU_MODEL, "--step-ms", "4", "--prefill-ms", "8", "--port"]
    with (
        running([*emulate, str(emu)], log=home / "emu.log") as emu_proc,
        running([*emulate, str(doomed)], log=home / "doomed.log") as doomed_proc,
    ):
        config = home / "wave.yaml"
        config.write_text(
            FLEET.format(local=local, emu=emu, doomed=doomed, embedded=EMBEDDED_MODEL, emu_model=EMU_MODEL)
        )
        for p, proc in ((emu, emu_proc), (doomed, doomed_proc)):
            wait_http(f"http://127.0.0.1:{p}/health", proc=proc)
        env = {"WAVE_ADMIN_KEY": ADMIN_KEY, "WAVE_API_KEY": API_KEY}
        with wave_up(home, config, port, env) as (_, info):
            yield Stack(
                f"http://127.0.0.1:{port}", home, info, {"doomed": doomed_proc.pid, "gpu-emu": emu_proc.pid}
            )


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """One browser per test module, not per session: Playwright's sync API keeps an event loop marked
    running in this thread while it is open, and any later test calling asyncio.run() would fail."""
    with browser(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture()
def page(chromium: BrowserContext) -> Iterator[Page]:
    """A new tab with no cookies (no session left by another test)."""
    chromium.clear_cookies()
    tab = chromium.new_page()
    tab.set_default_timeout(10_000)
    try:
        yield tab
    finally:
        tab.close()
