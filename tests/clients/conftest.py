"""The one running fleet the client tests share (started once per session: engines take seconds)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from clients_support import Fleet, fleet_file, start_engines, start_gateway


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("clients")
    with contextlib.ExitStack() as stack:
        llama, emu, fake = start_engines(stack, work)
        config = fleet_file(work / "wave.yaml", llama, emu, fake)
        url, log, _ = start_gateway(stack, work / "home", "--config", str(config))
        yield Fleet(url, work / "home", log, llama, emu)
