"""What the console's browser tests share: Debian's chromium driven by Playwright, a running
`wave up` stack with real backends, and signing in (a module of its own: `conftest` names collide
between test folders)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from playwright.sync_api import BrowserContext, Page, sync_playwright

from support import running

WAVE = Path(sys.executable).with_name("wave")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
ADMIN_KEY = "console-test-admin-key-0123456789"
API_KEY = "console-test-api-key-0123456789abcdef"  # passes check_strength (issue 19)
EMBEDDED_MODEL = "smollm2-135m-instruct"
EMU_MODEL = "demo-3b"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


@dataclass
class Stack:
    base: str  # http://127.0.0.1:port
    home: Path
    info: dict
    pids: dict[str, int] = field(default_factory=dict)  # emulated engines the test started

    @property
    def console(self) -> str:
        return self.base + "/console"

    @property
    def api(self) -> str:
        return self.base + "/v1"


@contextlib.contextmanager
def browser(user_data: Path) -> Iterator[BrowserContext]:
    """Headless Debian chromium with a fresh profile (Playwright's own browser download cannot work
    here: no network but the package registries)."""
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(user_data),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def sign_in(page: Page, stack: Stack, key: str = ADMIN_KEY, *, next_path: str = "/") -> None:
    page.goto(f"{stack.console}/login?next=/console{next_path}")
    page.fill("#admin_key", key)
    page.click("form[action$='/login'] button[type=submit]")


def csp_violations(page: Page) -> list[str]:
    """Collects the browser's Content-Security-Policy complaints from now on."""
    found: list[str] = []
    page.on(
        "console",
        lambda m: (
            found.append(m.text) if "Content Security Policy" in m.text or "Refused to" in m.text else None
        ),
    )
    return found


def screenshot(page: Page, name: str) -> None:
    """`WAVE_SCREENSHOTS=1 pytest tests/console` (make screenshots) refreshes docs/console/NAME.png."""
    if os.environ.get("WAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    """Seconds until `check()` held (raises after `timeout`)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    raise TimeoutError(f"not true after {timeout} s")


@contextlib.contextmanager
def wave_up(
    home: Path, config: Path, port: int, env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen, dict]]:
    """`wave up --json --config CONFIG`; yields the process and its ready line."""
    log = home / "up.log"
    cmd = [WAVE, "up", "--port", str(port), "--json", "--config", config]
    with running(cmd, log=log, env={**env, "WAVE_HOME": str(home)}) as proc:
        ready = wait_until(lambda: log.read_bytes().startswith(b"{") or proc.poll() is not None, 120, 0.1)
        assert proc.poll() is None, f"wave up exited after {ready:.1f} s: {log.read_text()[-2000:]}"
        yield proc, orjson.loads(log.read_bytes().splitlines()[0])
