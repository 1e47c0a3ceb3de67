"""The playground streams from the embedded llama-server through the gateway, shows TTFT, tokens/s
and the backend, compares two models side by side, and shows model output as text: a real model
made to answer `<script>...` (a llama.cpp grammar) does not run it."""

from __future__ import annotations

import re

import pytest
from console_support import EMBEDDED_MODEL, EMU_MODEL, Stack, csp_violations, screenshot, sign_in
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.engine
EVIL = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"


def test_the_playground_streams_from_the_embedded_model_beside_another(stack: Stack, page: Page) -> None:
    violations = csp_violations(page)
    sign_in(page, stack, next_path="/playground")
    page.select_option("#model-a", EMBEDDED_MODEL)
    page.select_option("#model-b", EMU_MODEL)
    page.fill("#prompt", "Name three colours.")
    page.fill("#max-tokens", "24")
    chunks: list[int] = []
    # the answer grows while it streams: record its length as it changes
    page.evaluate(
        """() => { window.__sizes = []; new MutationObserver(() => window.__sizes.push(
             document.querySelector('#pane-a .answer').textContent.length))
           .observe(document.querySelector('#pane-a .answer'), {childList: true, subtree: true}); }"""
    )
    page.click("#send")
    page.wait_for_selector("#pane-a[data-done]", timeout=90_000)
    page.wait_for_selector("#pane-b[data-done]", timeout=90_000)
    chunks = page.evaluate("window.__sizes")
    assert len([n for n in chunks if n > 0]) >= 3, f"the answer arrived in one piece, not streamed: {chunks}"
    a, b = page.locator("#pane-a"), page.locator("#pane-b")
    expect(a.locator(".backend")).to_have_text("embedded")
    expect(b.locator(".backend")).to_have_text("gpu-emu")
    expect(a.locator(".ttft")).to_have_text(re.compile(r"^\d+ ms$"))
    assert float(a.locator(".tps").inner_text()) > 0
    assert int(a.locator(".tokens").inner_text()) > 1
    assert a.locator(".answer").inner_text().strip()
    screenshot(page, "playground")
    assert violations == []


def test_model_output_with_markup_is_shown_as_text(stack: Stack, page: Page) -> None:
    sign_in(page, stack, next_path="/playground")
    page.select_option("#model-a", EMBEDDED_MODEL)
    page.fill("#prompt", "Say anything.")
    page.click("#playground details summary")
    grammar = 'root ::= "' + EVIL.replace('"', '\\"') + '"'
    page.evaluate("g => { document.getElementById('extra').value = JSON.stringify({grammar: g}); }", grammar)
    page.click("#send")
    page.wait_for_selector("#pane-a[data-done]", timeout=90_000)
    answer = page.locator("#pane-a .answer")
    expect(answer).to_have_text(EVIL)
    assert answer.locator("script, img").count() == 0
    assert page.evaluate("window.__xss") is None
