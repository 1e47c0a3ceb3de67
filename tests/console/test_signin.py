"""Signing in and out of the console in a real browser: the admin key opens it, API keys and wrong
keys do not, the session cookie's attributes, and CSRF refusals."""

from __future__ import annotations

import httpx
import pytest
from console_support import ADMIN_KEY, API_KEY, Stack, csp_violations, screenshot, sign_in
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.engine


def test_admin_key_signs_in_and_out(stack: Stack, page: Page) -> None:
    assert stack.info["console_url"] == stack.console  # wave up prints it beside the API URL
    violations = csp_violations(page)
    page.goto(stack.console + "/")
    expect(page).to_have_url(f"{stack.console}/login?next=/console/")
    screenshot(page, "sign-in")
    sign_in(page, stack)
    expect(page.locator("h1")).to_have_text("Fleet")
    cookie = next(c for c in page.context.cookies() if c["name"] == "wave_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert not cookie["secure"]  # plain http on loopback: Secure only over TLS
    assert ADMIN_KEY not in page.content()

    page.click("header .who button")  # Sign out (a POST with the session's CSRF token)
    expect(page).to_have_url(f"{stack.console}/login")
    assert not [c for c in page.context.cookies() if c["name"] == "wave_console"]
    page.goto(stack.console + "/")  # the old session no longer opens anything
    expect(page).to_have_url(f"{stack.console}/login?next=/console/")
    assert violations == []


@pytest.mark.parametrize("key", [API_KEY, "wave-sk-0123456789ab_" + "x" * 43, "not-the-admin-key"])
def test_api_keys_and_wrong_keys_never_open_the_console(stack: Stack, page: Page, key: str) -> None:
    sign_in(page, stack, key)
    expect(page.locator(".error")).to_be_visible()
    assert "/login" in page.url
    assert not [c for c in page.context.cookies() if c["name"] == "wave_console"]
    if key.startswith("wave-sk-") or key == API_KEY:
        expect(page.locator(".error")).to_contain_text("API keys never open the console")


def test_a_state_changing_request_without_the_csrf_token_is_refused(stack: Stack, page: Page) -> None:
    sign_in(page, stack)
    expect(page.locator("h1")).to_have_text("Fleet")
    session = next(c["value"] for c in page.context.cookies() if c["name"] == "wave_console")
    cookies = {"wave_console": session}
    origin = {"origin": stack.base}
    # the browser's own session cookie, but no token: refused, and the session stays signed in
    r = httpx.post(stack.console + "/logout", cookies=cookies, headers=origin)
    assert r.status_code == 403 and "CSRF" in r.text
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    # a token but another site's Origin (what a cross-site form post carries): refused too
    r = httpx.post(
        stack.console + "/logout",
        cookies=cookies,
        data={"csrf_token": token},
        headers={"origin": "http://evil.test"},
    )
    assert r.status_code == 403 and "another origin" in r.text
    # a forged form from another page in the browser: the session cookie is SameSite=Strict and the
    # token unknown, so the console refuses it
    page.goto(stack.console + "/")
    page.evaluate(
        """() => fetch('/console/logout', {method: 'POST', body: new URLSearchParams({csrf_token: 'guess'})})
               .then(r => { window.__status = r.status; })"""
    )
    page.wait_for_function("window.__status !== undefined")
    assert page.evaluate("window.__status") == 403
    page.reload()
    expect(page.locator("h1")).to_have_text("Fleet")  # still signed in


def test_the_sign_in_form_refuses_a_post_from_elsewhere(stack: Stack) -> None:
    r = httpx.post(stack.console + "/login", data={"admin_key": ADMIN_KEY, "pre": "x"})
    assert r.status_code == 403
    assert "wave_console" not in r.cookies
