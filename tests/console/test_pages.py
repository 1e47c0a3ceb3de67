"""Requests, Audit, Sizing and Benchmarks render real data in the browser: the gateway's own
requests and audit chain (and a chain broken on disk shown where it breaks), a sizing with its
charts, and a short bench started from the page with its report."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from console_support import API_KEY, EMU_MODEL, Stack, csp_violations, screenshot, sign_in, wait_until
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.engine
EVIL_MODEL = "<script>window.__xss=1</script>"


def _requests(stack: Stack) -> None:
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {API_KEY}"}) as c:
        for stream in (True, False):
            body = {"model": EMU_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
            assert c.post(stack.api + "/chat/completions", json={**body, "stream": stream}).status_code == 200
        r = c.post(
            stack.api + "/chat/completions",
            json={"model": EVIL_MODEL, "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 404


def test_requests_lists_the_gateways_requests_with_filters(stack: Stack, page: Page) -> None:
    violations = csp_violations(page)
    _requests(stack)
    sign_in(page, stack, next_path="/requests")

    def listed() -> bool:
        page.goto(stack.console + f"/requests?model={EMU_MODEL}")
        return page.locator("#requests tbody tr").count() >= 2 and "default" in page.inner_text("#requests")

    wait_until(listed, timeout=5, step=0.2)
    streamed = page.locator("#requests tbody tr", has_text="stream").first
    expect(streamed).to_contain_text(EMU_MODEL)
    expect(streamed.locator("td").nth(5)).to_contain_text(" ms")  # TTFT: from the process's own record
    screenshot(page, "requests")
    page.goto(stack.console + "/requests?status=4xx")
    expect(page.locator("#requests")).to_contain_text(EVIL_MODEL)  # a user's model name, as text
    assert page.locator("#requests script").count() == 0 and page.evaluate("window.__xss") is None
    assert violations == []


def test_sizing_explorer_shows_memory_verdict_and_curves(stack: Stack, page: Page) -> None:
    violations = csp_violations(page)
    sign_in(page, stack)
    page.goto(
        stack.console + "/sizing?model=llama-3.1-8b&quant=q4_k_m&device=rtx-5070-ti&engine=llamacpp"
        "&concurrency=4&fit_model=llama-3.2-3b"
    )
    expect(page.locator("#sizing-result h2").first).to_contain_text("fits")
    expect(page.locator("#memory tbody tr").first).to_contain_text("rtx-5070-ti")
    expect(page.locator("#sizing-result canvas")).to_have_count(3)  # uPlot drew the three curves
    expect(page.locator("#fit tbody tr").first).to_contain_text("rtx-5070-ti")  # the fleet file's GPU
    screenshot(page, "sizing")
    page.goto(stack.console + "/sizing?model=no-such-model")
    expect(page.locator("main .error")).to_contain_text("no-such-model")
    assert violations == []


def test_a_short_bench_runs_from_the_page_with_progress_and_a_report(stack: Stack, page: Page) -> None:
    violations = csp_violations(page)
    sign_in(page, stack, next_path="/bench")
    form = page.locator("#bench-form")
    form.locator("select[name=model]").select_option(EMU_MODEL)
    form.locator("input[name=concurrency]").fill("1,2")
    form.locator("input[name=requests]").fill("4")
    form.locator("input[name=output_tokens]").fill("8")
    form.locator("button[type=submit]").click()
    expect(page.locator("#bench-progress progress")).to_be_visible()
    page.wait_for_selector("#bench-result", timeout=60_000)  # the polled fragment says done
    expect(page.locator("#bench-progress .bench-state")).to_have_text("done")
    page.goto(stack.console + "/bench")
    expect(page.locator("#bench-runs tbody tr").first).to_contain_text("c=1, c=2")
    screenshot(page, "bench")
    page.locator("#bench-runs tbody tr a").first.click()
    expect(page.locator("#bench-points tbody tr")).to_have_count(2)
    page.wait_for_function(
        "[...document.querySelectorAll('img.plot')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("img.plot").count() >= 2
    screenshot(page, "bench-report")
    assert violations == []


def test_audit_verifies_the_chain_and_shows_where_it_breaks(stack: Stack, page: Page) -> None:
    violations = csp_violations(page)
    sign_in(page, stack, next_path="/audit")
    page.click("#verify")
    expect(page.locator("#chain-ok")).to_contain_text("Chain intact")
    expect(page.locator("#audit tbody tr").first).to_be_visible()
    screenshot(page, "audit")
    # someone edits a row on disk: the page names it and shows the rows around it
    db = sqlite3.connect(stack.home / "audit.db")
    row = db.execute("SELECT id FROM audit WHERE tokens_out IS NOT NULL ORDER BY id LIMIT 1").fetchone()[0]
    db.execute("UPDATE audit SET tokens_out = tokens_out + 1000 WHERE id = ?", (row,))
    db.commit()
    db.close()
    page.reload()
    page.click("#verify")
    expect(page.locator("#chain-broken")).to_contain_text(f"Chain broken at row {row}")
    page.click("#chain-broken a")
    expect(page.locator(f"#audit tr#row-{row}")).to_have_class("broken")
    screenshot(page, "audit-broken")
    assert violations == []
