"""The Fleet page in a real browser: real backends, live updates, and a backend killed during the
test turning red within 3 s."""

from __future__ import annotations

import os
import signal

import httpx
import pytest
from console_support import (
    API_KEY,
    EMBEDDED_MODEL,
    EMU_MODEL,
    Stack,
    csp_violations,
    screenshot,
    sign_in,
    wait_until,
)
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.engine


def _traffic(stack: Stack) -> None:
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {API_KEY}"}) as c:
        for model in (EMBEDDED_MODEL, EMU_MODEL, EMU_MODEL, EMU_MODEL):
            r = c.post(
                stack.api + "/chat/completions",
                json={
                    "model": model,
                    "messages": [{"role": "user", "content": "hello"}],
                    "max_tokens": 8,
                    "stream": True,
                },
            )
            assert r.status_code == 200


def test_fleet_shows_every_backend_with_its_state(stack: Stack, page: Page) -> None:
    violations = csp_violations(page)
    _traffic(stack)
    sign_in(page, stack)
    rows = page.locator("#backends tbody tr")
    expect(rows).to_have_count(3)
    for name in ("embedded", "gpu-emu"):
        row = page.locator(f"#backends tr[data-backend='{name}']")
        expect(row.locator(".pill")).to_have_text("up")
    emu = page.locator("#backends tr[data-backend='gpu-emu']")
    expect(emu).to_contain_text("vllm")
    expect(emu).to_contain_text(EMU_MODEL)
    # observed TTFT after the traffic above, beside sizing's prediction for an RTX 5070 Ti
    expect(emu.locator("td").nth(7)).not_to_have_text("– / –")
    expect(page.locator("#models")).to_contain_text(EMBEDDED_MODEL)
    expect(page.locator("#devices")).to_contain_text("rtx-5070-ti")
    screenshot(page, "fleet")
    assert violations == []


def test_a_killed_backend_turns_red_within_3_seconds(stack: Stack, page: Page) -> None:
    sign_in(page, stack)
    row = page.locator("#backends tr[data-backend='doomed']")
    expect(row.locator(".pill")).to_have_text("up")
    os.killpg(stack.pids["doomed"], signal.SIGKILL)
    took = wait_until(lambda: row.locator(".pill").inner_text() == "down", timeout=3.0)
    assert took < 3.0
    expect(row).to_have_class("state-down")
    expect(row.locator(".why")).to_contain_text("health check failed")
