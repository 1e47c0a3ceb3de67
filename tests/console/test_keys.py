"""Keys from the console, checked against /v1: a key created on the page works at once, its secret
is shown exactly once, a limit edited on the page holds, and a key revoked on the page stops
working within a second."""

from __future__ import annotations

import time

import httpx
import pytest
from console_support import EMU_MODEL, Stack, csp_violations, screenshot, sign_in
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.engine


def _chat(stack: Stack, key: str) -> int:
    r = httpx.post(
        stack.api + "/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": EMU_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        timeout=10,
    )
    return r.status_code


def test_a_key_created_and_revoked_on_the_page_works_then_stops_within_a_second(
    stack: Stack, page: Page
) -> None:
    violations = csp_violations(page)
    sign_in(page, stack, next_path="/keys")
    form = page.locator("#create-key")
    form.locator("input[name=name]").fill("ci-service")
    form.locator("input[name=models]").fill("demo-*")
    form.locator("button[type=submit]").click()
    secret = page.locator("#secret-value").inner_text().strip()
    assert secret.startswith("wave-sk-")
    expect(page.locator("#keys tr[data-key='ci-service']")).to_contain_text("demo-*")
    screenshot(page, "keys")
    assert _chat(stack, secret) == 200

    page.goto(stack.console + "/keys")  # shown once: never again, anywhere
    assert secret not in page.content()
    page.locator("#keys tr[data-key='ci-service'] a").click()
    assert secret not in page.content()

    page.goto(stack.console + "/keys")
    page.locator("#keys tr[data-key='ci-service'] button[data-action=revoke]").click()
    page.wait_for_url(stack.console + "/keys")
    revoked_at = time.monotonic()
    while (status := _chat(stack, secret)) != 401 and time.monotonic() - revoked_at < 1.0:
        time.sleep(0.02)
    assert status == 401, "the revoked key still worked a second after the page revoked it"
    assert violations == []


def test_a_limit_edited_on_the_page_holds_at_v1(stack: Stack, page: Page) -> None:
    sign_in(page, stack, next_path="/keys")
    form = page.locator("#create-key")
    form.locator("input[name=name]").fill("ci-limited")
    form.locator("button[type=submit]").click()
    secret = page.locator("#secret-value").inner_text().strip()
    page.locator("#keys tr[data-key='ci-limited'] a").click()
    edit = page.locator("#edit-key")
    edit.locator("input[name=rpm]").fill("1")
    edit.locator("button[type=submit]").click()
    expect(page.locator("#edit-key input[name=rpm]")).to_have_value("1")
    screenshot(page, "key")
    assert _chat(stack, secret) == 200
    assert _chat(stack, secret) == 429  # one request per minute


def test_a_key_name_with_markup_is_refused_and_shown_as_text(stack: Stack, page: Page) -> None:
    sign_in(page, stack, next_path="/keys")
    evil = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
    page.locator("#create-key input[name=name]").fill(evil)
    page.locator("#create-key button[type=submit]").click()
    expect(page.locator("main .error")).to_contain_text("<script>window.__xss=1</script>")
    assert page.locator("main .error script, main .error img").count() == 0
    assert page.evaluate("window.__xss") is None
