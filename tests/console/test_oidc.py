"""Console sign-in through OpenID Connect against a real provider: panva's oidc-provider (the
certified Node.js implementation, from the npm registry) on 127.0.0.1, the authorization code flow
with PKCE through its own login and consent pages, in the browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from console_support import EMU_MODEL, WAVE, wait_until
from playwright.sync_api import BrowserContext, Page, expect

from support import running
from waveidp.loopback import free_port, wait_http

PROVIDER = Path(__file__).parent / "oidc_provider"
pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def oidc_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert (PROVIDER / "node_modules" / "oidc-provider").is_dir(), (
        "the test OIDC provider is not installed: run `make test` (npm ci in tests/console/oidc_provider)"
    )
    home = tmp_path_factory.mktemp("oidc-home")
    idp, gw, emu = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp}"
    callback = f"http://127.0.0.1:{gw}/console/auth/callback"
    with (
        running(
            ["node", PROVIDER / "provider.mjs", str(idp), callback], log=home / "idp.log", cwd=PROVIDER
        ) as p,
        running(
            [WAVE, "emulate", "--model", EMU_MODEL, "--step-ms", "2", "--port", str(emu)],
            log=home / "emu.log",
        ),
    ):
        wait_http(issuer + "/.well-known/openid-configuration", proc=p)
        wait_http(f"http://127.0.0.1:{emu}/health")
        serve = [
            WAVE, "serve", "--upstream", f"http://127.0.0.1:{emu}", "--port", str(gw),
            "--oidc-issuer", issuer, "--oidc-audience", "wave-gateway", "--oidc-jwks-url", issuer + "/jwks",
            "--oidc-client-id", "wave-console",
        ]  # fmt: skip
        env = {"WAVE_HOME": str(home), "WAVE_ADMIN_KEY": "oidc-test-admin-key-0123456789abcdef"}
        with running(serve, log=home / "serve.log", env=env) as g:
            wait_http(f"http://127.0.0.1:{gw}/ready", proc=g, timeout=30)
            yield f"http://127.0.0.1:{gw}"


def _oidc_sign_in(page: Page, base: str, user: str) -> None:
    page.goto(base + "/console/login")
    page.click("a.button:has-text('Sign in with')")
    page.fill("input[name=login]", user)  # the provider's own login page
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # its consent page: authorize the console
    page.wait_for_url(base + "/console/")


@pytest.fixture()
def fresh(chromium: BrowserContext) -> Iterator[Page]:
    chromium.clear_cookies()  # the provider's cookies too: a new login every time
    tab = chromium.new_page()
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        tab.close()


def test_an_oidc_user_signs_in_as_a_viewer_and_chats_with_their_own_token(
    oidc_gateway: str, fresh: Page
) -> None:
    _oidc_sign_in(fresh, oidc_gateway, "alice")
    expect(fresh.locator("header .who")).to_contain_text("alice · viewer")
    expect(fresh.locator("header nav")).not_to_contain_text("Keys")
    fresh.goto(oidc_gateway + "/console/keys")
    expect(fresh.locator("main")).to_contain_text("needs a console admin")
    fresh.goto(oidc_gateway + "/console/playground")
    fresh.fill("#prompt", "hello")
    fresh.click("#send")
    fresh.wait_for_selector("#pane-a[data-done]")
    expect(fresh.locator("#pane-a .backend")).to_have_text("upstream0")
    expect(fresh.locator("#pane-a .answer")).not_to_be_empty()


def test_an_oidc_admin_group_member_is_a_console_admin(oidc_gateway: str, fresh: Page) -> None:
    _oidc_sign_in(fresh, oidc_gateway, "admin-bob")
    expect(fresh.locator("header .who")).to_contain_text("admin-bob · admin")
    fresh.goto(oidc_gateway + "/console/playground")
    fresh.fill("#prompt", "hello")
    fresh.click("#send")
    fresh.wait_for_selector("#pane-a[data-done]")

    # the playground's request went through /v1 with bob's own JWT access token: the audit log
    # names him, not the bootstrap key
    def audited() -> bool:  # the audit writer commits every 50 ms
        fresh.goto(oidc_gateway + "/console/requests?principal=admin-bob")
        return "admin-bob" in fresh.locator("#requests tbody tr").first.inner_text()

    wait_until(audited, timeout=5, step=0.2)
    expect(fresh.locator("#requests tbody tr").first).to_contain_text("upstream0")


def test_a_callback_that_did_not_start_in_this_browser_is_refused(oidc_gateway: str) -> None:
    r = httpx.get(oidc_gateway + "/console/auth/callback?code=x&state=y")
    assert r.status_code == 400 and "did not start in this browser" in r.text
    assert "wave_console" not in r.cookies
