"""Keep N headless chromium tabs signed in on the console's Fleet page (polling every second) until
killed: the "browser page open on it" of the gateway overhead benchmark.

    .venv/bin/python benchmarks/console_tab.py --url http://127.0.0.1:4000 --admin-key KEY [--tabs 1]
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import threading

from playwright.sync_api import sync_playwright


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--admin-key", required=True)
    ap.add_argument("--tabs", type=int, default=1)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="console-tab-"),
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )  # fmt: skip
        page = browser.pages[0] if browser.pages else browser.new_page()
        page.goto(args.url + "/console/login")
        page.fill("#admin_key", args.admin_key)
        page.click("form[action$='/login'] button[type=submit]")
        page.wait_for_selector("#fleet-live")
        for _ in range(args.tabs - 1):
            browser.new_page().goto(args.url + "/console/")
        print("console tab open", flush=True)
        while not stop.is_set():
            page.wait_for_timeout(500)  # lets the browser's event loop run (the polls)
        browser.close()


if __name__ == "__main__":
    main()
