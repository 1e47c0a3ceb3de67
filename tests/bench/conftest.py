from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bench_support import start_emulator

from waveidp.loopback import wait_http


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    """A `wave emulate` process with exact fixed timing: prefill 20 ms, decode step 10 ms."""
    url, ctx = start_emulator(tmp_path, "--model", "emu-model", "--step-ms", "10", "--prefill-ms", "20")
    with ctx as proc:
        wait_http(url + "/health", proc=proc)
        yield url
