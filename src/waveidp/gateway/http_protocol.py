"""The HTTP/1.1 protocol the gateway serves with: uvicorn's httptools protocol, bounded against a
hostile client before the application sees a byte.

uvicorn has no knob for any of these: llhttp accepts headers of any size (httptools joins a
header split over many reads by bytes concatenation), a connection that never finishes its
request head is never closed (`timeout_keep_alive` only runs between requests), neither is one
that trickles its body, and one client may hold every file descriptor the process has.

- **Head size and count**: more than `max_header_bytes` of request line and headers, or more than
  `max_headers` headers -> 431 and the connection is closed, on every route. A read that goes on
  an unfinished head is parsed only as far as the head may still grow; a head that begins in a
  read longer than the limit is measured once complete. So the most a head makes httptools parse
  is the read it began in (uvloop reads at most 256 KiB) and the limit, and an ordinary head, whole
  in a short first read, costs one comparison.
- **Head timeout**: a request head (from the connection's opening, or from its first byte on a
  kept-alive connection) not complete within `header_timeout_s` -> 408 and closed (closed without
  an answer when not a byte of it came).
- **Body timeout**: a body not complete within `body_timeout_s` of its first read -> closed (408
  when no answer has started). A total, not an idle time: a body trickled a byte at a time would
  pass any idle timeout. A body the gateway itself holds back (flow control, while it has not yet
  read) gets more time; one still arriving after its answer was sent is cut off.
- **Write stall**: a client that stops reading its answer (its socket buffer full) for
  `write_timeout_s` -> closed; the stream's upstream request is then cancelled.
- **An answer before the body's end** (`REFUSE_UNREAD`, in each request's scope): an answer the
  application gives before its request's body has all arrived (a refusal: 401, 413, 400 from the
  JSON shape of the first chunks) is written with `connection: close`, the body stops reaching
  the application, and the rest of it is read and dropped without being parsed, as nginx's
  lingering close does, for at most LINGER_BYTES and LINGER_S: a client still sending its body
  (Python's urllib reads nothing before it has sent all) would see its write reset instead of the
  answer if the connection closed at once with unread data. Then the connection is closed. Each
  capped client may have `refused_body_bytes_per_minute` read this way; beyond, its connection is
  closed at once after the answer (it may then see a reset): a client sending refused bodies in a
  loop would otherwise have the gateway copy all of them (~1 ms of CPU per 2.4 MB).
- **Connections per client**: the `max_connections_per_client`-th + 1 connection from one client
  (an IPv4 address, or an IPv6 /64: `limits.client_of`) is answered 429 at once and closed.
  Counted per process (each `--workers` worker counts its own). Addresses in `uncapped`
  (loopback by default: a local reverse proxy carries every client's requests) are not counted.

Honest requests pay an attribute test or two per read; timers are armed only at a connection's
opening and for heads or bodies that span reads (`benchmarks/results/gateway_overhead_guard.json`).

This subclasses uvicorn's `HttpToolsProtocol` and relies on its attribute names (`parser`,
`headers`, `cycle`, `client`, `flow`, `transport`); the tests that attack a running gateway
(`tests/security/test_attacks.py`) fail if a uvicorn release renames them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from waveidp.errors import ApiError
from waveidp.security.limits import AddressBuckets, Bucket, client_of

log = logging.getLogger("waveidp.gateway")


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    write_timeout_s: float = 60.0
    max_connections_per_client: int = 256
    refused_body_bytes_per_minute: int = 64 * 1024 * 1024
    uncapped: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        nets = tuple(ipaddress.ip_network(n, strict=False) for n in self.uncapped)
        object.__setattr__(self, "networks", nets)

    def client(self, address: str) -> str | None:
        """Whom the connection cap counts this address as (`limits.client_of`: an IPv6 address
        by its /64); None for an address in `uncapped`."""
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return address
        mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:a.b.c.d from a dual-stack socket
        ip = mapped or ip
        return None if any(ip in net for net in self.networks) else client_of(str(ip))


_CLIENT_MEMO = 10_000  # addresses whose client() answer is remembered
# The scope key of a weak reference to the connection's `refuse_unread(status, headers, body) ->
# bool`: the answer written and the connection closed after a lingering read of the rest of the
# body, when the body has not all arrived (True); else False, and the application answers as usual.
# Weak: a scope that held the protocol would make every connection a reference cycle, its buffers
# kept until the next full garbage collection.
REFUSE_UNREAD = "wave.refuse_unread"
# What a connection whose body was refused may still send before it is closed.
LINGER_BYTES = 64 * 1024 * 1024
LINGER_S = 10.0


# What a refusal is told to the gateway: ("request", status) for a 431 (a request, counted and
# audited as one), ("connection", reason) for a connection closed before it made a request.
OnRefused = Callable[[str, str | int, str], None]  # kind, status or reason, client address


class _Refused(Exception):
    """Raised inside a parser callback to stop httptools once the refusal is written."""


def guarded_protocol(
    limits: ConnectionLimits, on_refused: OnRefused | None = None
) -> type[HttpToolsProtocol]:
    """A protocol class for `uvicorn.Config(http=...)`, with its own per-address connection counts."""

    class GuardedHttpProtocol(_GuardedHttpProtocol):
        pass

    GuardedHttpProtocol.limits = limits
    GuardedHttpProtocol.on_refused = staticmethod(on_refused or _ignore)
    GuardedHttpProtocol.per_client = {}
    GuardedHttpProtocol.clients = {}
    GuardedHttpProtocol.lingered = AddressBuckets(limits.refused_body_bytes_per_minute)
    return GuardedHttpProtocol


def _ignore(kind: str, what: str | int, address: str) -> None:
    return None


class _GuardedHttpProtocol(HttpToolsProtocol):
    limits: ConnectionLimits
    on_refused: OnRefused
    per_client: dict[str, int]  # open connections per client (ConnectionLimits.client)
    clients: dict[str, str | None]  # address -> its client, None uncapped (memo of ConnectionLimits.client)
    lingered: AddressBuckets  # bytes of refused bodies read per client (refused_body_bytes_per_minute)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._client: str | None = None  # counted in per_client
        self._in_head = False  # a request head has begun and is not complete
        self._measure_head = False  # it began in a read longer than max_header_bytes
        self._read_len = 0
        self._in_body = False  # its head is complete and its body is not
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._lingering = -1  # bytes the client may still send before the connection is closed
        self._linger_budget: Bucket | None = None  # its client's budget (None: uncapped)
        self._refuse_hook = weakref.WeakMethod(self._refuse_unread)
        self._running: Any = None  # the cycle whose application task runs (others may be queued)

    # --- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)
        address = self.client[0] if self.client else "?"
        if address in self.clients:
            client = self.clients[address]
        else:
            client = self.limits.client(address)
            if len(self.clients) < _CLIENT_MEMO:
                self.clients[address] = client
        if client is None:
            return
        count = self.per_client.get(client, 0)
        if count >= self.limits.max_connections_per_client:
            self._refuse(
                429,
                "too_many_connections",
                f"too many connections from {client} (limit {self.limits.max_connections_per_client})",
            )
            self.on_refused("connection", "too_many_connections", self._peer())
            return
        self.per_client[client] = count + 1
        self._client = client

    def connection_lost(self, exc: Exception | None) -> None:
        if self._client is not None:
            left = self.per_client[self._client] - 1
            if left:
                self.per_client[self._client] = left
            else:
                del self.per_client[self._client]
            self._client = None
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            if self._lingering >= 0:  # the rest of a refused body: dropped unparsed
                self._lingering -= len(data)
                if self._linger_budget is not None:
                    self._linger_budget.level -= len(data)
                if self._lingering < 0:
                    self._close()
            return
        self._unset_keepalive_if_required()
        self._read_len = len(data)
        if self._in_head:  # this read goes on a head begun in an earlier one
            room = self.limits.max_header_bytes - self._head_bytes
            if len(data) > room:
                # parse no more of it than the head may still take: a head not complete by then is
                # over the limit; what follows a complete one (body, pipelined requests) is parsed
                view = memoryview(data)
                if not self._feed(view[:room]):
                    return
                if self._in_head:
                    self._refuse_head()
                    return
                data = view[room:]
            else:
                self._head_bytes += len(data)
        if not self._feed(data):
            return
        if self._in_head:  # the head goes on in the next read
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)
        elif self._in_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timed_out)

    def _feed(self, data: bytes | memoryview) -> bool:
        """Parse `data`; False once the connection is refused or closed (a malformed request)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no upgrades served (uvicorn runs with ws="none"); the request is answered as HTTP
        except httptools.HttpParserError:
            if not self._refused:
                # uvicorn logs a warning per malformed request: a client could fill the log
                log.debug("invalid HTTP request from %s", self._peer())
                self.send_400_response("Invalid HTTP request received.")
                self._refused = True
            return False
        return not self._refused

    # --- parser callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        # a head that begins in a read longer than the limit may end in it too: measure it whole
        self._measure_head = self._read_len > self.limits.max_header_bytes
        super().on_message_begin()
        self.scope[REFUSE_UNREAD] = self._refuse_hook  # type: ignore[literal-required]

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if len(self.headers) > self.limits.max_headers or (self._measure_head and self._head_size_over()):
            self._refuse_head()
            raise _Refused  # stops httptools inside its callback; caught in _feed
        self._in_body = True
        super().on_headers_complete()

    def _head_size_over(self) -> bool:
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        return size > self.limits.max_header_bytes

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    # --- refusals --------------------------------------------------------------------------------

    def _peer(self) -> str:
        return self.client[0] if self.client else "?"

    def _refuse_head(self) -> None:
        lim = self.limits
        self._refuse(
            431,
            "request_header_fields_too_large",
            f"request headers exceed the limit ({lim.max_headers} headers, {lim.max_header_bytes} bytes "
            "with the request line)",
        )
        self.on_refused("request", 431, self._peer())

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing():
            return
        self.on_refused("connection", "header_timeout", self._peer())
        if not self._in_head:  # not a byte of a request since the connection opened
            self._close()
            return
        self._refuse(
            408,
            "request_timeout",
            f"request headers not received within {self.limits.header_timeout_s:g} s",
        )

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self._refused or self.transport.is_closing() or not self._in_body:
            return
        answered = self.cycle is not None and self.cycle.response_started
        if self.flow.read_paused and not answered:  # the gateway has not read yet: its delay
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timed_out)
            return
        self.on_refused("connection", "body_timeout", self._peer())
        if answered:
            self._close()
            return
        self._refuse(
            408, "request_timeout", f"no byte of the request body for {self.limits.body_timeout_s:g} s"
        )

    # --- writing ---------------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.write_timeout_s, self._write_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_stalled(self) -> None:
        self._write_timer = None
        if not self._refused and not self.transport.is_closing():
            self.on_refused("connection", "write_timeout", self._peer())
            self._close()
            self.transport.abort()  # close() would wait for the unread data to drain

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer `status` with the OpenAI error shape and close the connection."""
        kind = "invalid_request_error" if status != 429 else "rate_limit_error"
        body = ApiError(status, message, type=kind, code=code).json()
        headers = [(b"content-type", b"application/json")]
        if status == 429:
            headers.append((b"retry-after", b"1"))
        self._write_closing(status, headers, body)
        self._close()

    def _write_closing(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """Write a whole answer that says the connection closes after it."""
        head = [STATUS_LINE[status]]
        head.extend(b"%s: %s\r\n" % (name, value) for name, value in headers if name != b"content-length")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)

    def _refuse_unread(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
        """`REFUSE_UNREAD`: for the running request, whose body has not all arrived."""
        if (
            not self._in_body
            or self._running is not self.cycle
            or self._refused
            or self.transport.is_closing()
        ):
            return False
        self._write_closing(status, headers, body)
        self._close(linger=True)
        return True

    def _linger_done(self) -> None:
        self._linger_timer = None
        self._close()

    def _close(self, *, linger: bool = False) -> None:
        """Refuse the connection's requests; close it now, or (`linger`) once the client has sent
        what it was sending (its end, or LINGER_BYTES or LINGER_S)."""
        self._refused = True
        self._cancel_timers()
        # every request of the connection sees a disconnect: the running one (its receive() and a
        # send() waiting for the buffer to drain) and any pipelined behind it, which never start
        self.pipeline.clear()
        for cycle in (self._running, self.cycle):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        if linger and self._client is not None:  # within its client's budget
            now = self.loop.time()
            self._linger_budget = self.lingered.get(self._client, now)
            linger = self._linger_budget.refill(now) > 0
            if not linger:
                self.on_refused("connection", "refused_body_unread", self._peer())
        if linger:
            if self.cycle is not None:
                self.cycle.body = bytearray()  # what arrived of the body: never read now
            budget = self._linger_budget
            self._lingering = LINGER_BYTES if budget is None else min(LINGER_BYTES, int(budget.level))
            self._linger_timer = self.loop.call_later(LINGER_S, self._linger_done)
            self.flow.resume_reading()
        else:
            self._lingering = -1
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._write_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._write_timer = self._linger_timer = None
