"""Request ids end to end: the client's `x-request-id` (or one made here) goes to the engine, comes
back on every answer and error, and is in the audit row, the request's record and its log lines.

An id a client sends is kept when it is 1-128 characters of letters, digits and `-_.:/+=@`
(what UUIDs, OpenAI's `req_...`, W3C trace ids and most proxies' ids are); anything else is
replaced by a new id, so a header cannot carry control characters or a flood of bytes into the
logs and the audit log. New ids are `req_` and 24 hex digits: a random per-process prefix and a
counter (a fork-safe prefix, drawn again in each gateway worker).
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re

MAX_LENGTH = 128
_VALID = re.compile(rf"[A-Za-z0-9_.:/+=@-]{{1,{MAX_LENGTH}}}")
# The request id of the request a task is serving, for log lines ("-" outside requests).
CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("wave_request_id", default="-")


class _Ids:
    def __init__(self) -> None:
        self.pid = -1
        self.prefix = ""
        self.counter = itertools.count()

    def new(self) -> str:
        pid = os.getpid()
        if pid != self.pid:  # first use in this process (a forked worker draws its own prefix)
            self.pid, self.prefix, self.counter = pid, "req_" + os.urandom(6).hex(), itertools.count()
        return f"{self.prefix}{next(self.counter):012x}"


_IDS = _Ids()


def new_request_id() -> str:
    return _IDS.new()


def accept_request_id(sent: str | None) -> str:
    """The id of a request: the client's when it is a sane one, else a new one."""
    if sent and _VALID.fullmatch(sent):
        return sent
    return _IDS.new()


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every log record (`%(request_id)s`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = CURRENT.get()
        return True


class SafeText(logging.Filter):
    """Makes a log record's text safe to read: what clients and engines chose (a path, an error
    message) with its control characters and line breaks escaped, so it cannot forge a log line or
    drive a terminal, and the credentials of any URL in it hidden (a health probe's error may quote
    an upstream URL with its password)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from waveidp.escaping import printable
        from waveidp.security.secrets import redact_urls

        record.msg, record.args = redact_urls(printable(record.getMessage())), None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_urls(printable(text, keep_newlines=True))
        return True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def log_with_request_ids(level: str) -> None:
    """Configure logging (as `logging.basicConfig`) with the request id in every line."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
            handler.addFilter(SafeText())
