"""The gateway's log lines (issue 19 item 9): text a client or an engine chose cannot forge a line
or drive a terminal, and no URL credential reaches the log."""

from __future__ import annotations

import io
import logging

from waveidp.gateway.request_ids import LOG_FORMAT, RequestIdFilter, SafeText


def _logger() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SafeText())
    log = logging.getLogger("wave-test-log-lines")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log, out


def test_client_text_is_escaped_and_url_credentials_hidden() -> None:
    log, out = _logger()
    log.warning("unhandled error on %s", "/v1/x\n2026-01-01 WARNING forged line \x1b[2J\u202e")
    log.debug(
        "metrics of %s unreadable: %s", "gpu", "Cannot connect to http://wave:s3cret@10.0.0.5:8000/metrics"
    )
    try:
        raise ValueError("upstream said \x1b[31m http://u:pw@host/?api_key=k3y")
    except ValueError:
        log.exception("call failed")
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0].endswith(r"/v1/x\x0a2026-01-01 WARNING forged line \x1b[2J\u202e")
    assert "\x1b" not in text and "\u202e" not in text
    assert "s3cret" not in text and "pw@" not in text and "k3y" not in text
    assert "wave:***@10.0.0.5" in text and lines[-1].startswith("ValueError: upstream said \\x1b[31m")
