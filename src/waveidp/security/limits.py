"""Per-principal limits: requests per minute, tokens per minute, concurrent requests.

Both limits are token buckets that refill continuously (capacity per minute, capacity/60 per
second). A request takes one request token and needs the token bucket out of debt; after the
response, `release` charges the real usage (input + output tokens, so the bucket can go negative
and the next requests wait until it refills) and frees the concurrency slot.

`MemoryLimiter` keeps buckets in this process; `RedisLimiter` keeps them in Redis, with one Lua
script per operation so that several gateway replicas take from the same buckets atomically,
timed by the Redis server's clock. Both return the same `Decision`, which carries what the
`x-ratelimit-*` and `Retry-After` headers need.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from waveidp.security.secrets import redact_urls

log = logging.getLogger("waveidp.security.limits")

Reason = Literal["requests", "tokens", "concurrency", "unavailable"]
FailMode = Literal["open", "closed"]

# A concurrency slot whose holder vanished (a crashed replica) frees itself after this long.
DEFAULT_LEASE_S = 900.0


@dataclass(frozen=True)
class Limits:
    """None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None and self.max_concurrent is None


@dataclass(frozen=True)
class RedisDown:
    """What each limit does while Redis cannot be reached: `open` lets requests through without it,
    `closed` refuses them (503 `limits_unavailable`). The defaults keep a token budget (`tpm`) a
    budget, and let rates and concurrency, which protect the engines from bursts more than they
    meter anyone, go on."""

    rpm: FailMode = "open"
    tpm: FailMode = "closed"
    concurrency: FailMode = "open"

    def refused_by(self, limits: Limits) -> str | None:
        """The first of the principal's limits that fails closed, or None when all fail open."""
        for name, value, mode in (
            ("tpm", limits.tpm, self.tpm),
            ("rpm", limits.rpm, self.rpm),
            ("concurrency", limits.max_concurrent, self.concurrency),
        ):
            if value is not None and mode == "closed":
                return name
        return None

    def skipped(self, limits: Limits) -> tuple[str, ...]:
        return tuple(
            name
            for name, value in (
                ("rpm", limits.rpm),
                ("tpm", limits.tpm),
                ("concurrency", limits.max_concurrent),
            )
            if value is not None
        )


@dataclass(frozen=True)
class Ticket:
    """Proof of an admitted request; hand it back to `release`."""

    key: str
    limits: Limits
    lease: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limits: Limits
    reason: Reason | None = None
    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    in_flight: int = 0
    ticket: Ticket | None = None
    # the limits Redis could not check: let through (fail open), or the one that refused (closed)
    unchecked: tuple[str, ...] = ()

    def _reset(self, capacity: int | None, remaining: float | None) -> float | None:
        if capacity is None or remaining is None:
            return None
        return max(0.0, (capacity - remaining) * 60.0 / capacity)

    @property
    def reset_requests_s(self) -> float | None:
        """Seconds until the request bucket is full again."""
        return self._reset(self.limits.rpm, self.remaining_requests)

    @property
    def reset_tokens_s(self) -> float | None:
        return self._reset(self.limits.tpm, self.remaining_tokens)

    @property
    def retry_after_s(self) -> float | None:
        """Seconds until a refused request could pass (None when allowed)."""
        if self.allowed:
            return None
        if self.reason == "unavailable":
            return 1.0
        if self.reason == "requests" and self.limits.rpm and self.remaining_requests is not None:
            return (1.0 - self.remaining_requests) * 60.0 / self.limits.rpm
        if self.reason == "tokens" and self.limits.tpm and self.remaining_tokens is not None:
            return (1.0 - self.remaining_tokens) * 60.0 / self.limits.tpm
        return 1.0  # a concurrency slot frees when some response ends: no better guess than soon

    def headers(self) -> dict[str, str]:
        """OpenAI-style `x-ratelimit-*` headers, plus `Retry-After` (whole seconds) when refused."""
        h: dict[str, str] = {}
        if self.limits.rpm is not None and self.remaining_requests is not None:
            h["x-ratelimit-limit-requests"] = str(self.limits.rpm)
            h["x-ratelimit-remaining-requests"] = str(max(0, math.floor(self.remaining_requests)))
            h["x-ratelimit-reset-requests"] = go_duration(self.reset_requests_s or 0.0)
        if self.limits.tpm is not None and self.remaining_tokens is not None:
            h["x-ratelimit-limit-tokens"] = str(self.limits.tpm)
            h["x-ratelimit-remaining-tokens"] = str(max(0, math.floor(self.remaining_tokens)))
            h["x-ratelimit-reset-tokens"] = go_duration(self.reset_tokens_s or 0.0)
        retry = self.retry_after_s
        if retry is not None:
            h["Retry-After"] = str(max(1, math.ceil(retry)))
        return h


def go_duration(seconds: float) -> str:
    """Durations the way OpenAI writes them (Go's format): `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1.0:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60.0:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}m{round(rest):d}s"


class Limiter(Protocol):
    async def acquire(self, key: str, limits: Limits) -> Decision: ...

    async def release(self, ticket: Ticket, tokens: int) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Bucket:
    """A continuously refilling bucket of `capacity` per minute; `level` may go negative (debt)."""

    capacity: int
    level: float
    stamp: float

    def refill(self, now: float) -> float:
        self.level = min(float(self.capacity), self.level + max(0.0, now - self.stamp) * self.capacity / 60.0)
        self.stamp = now
        return self.level


def client_of(address: str) -> str:
    """Whom a per-client bound counts (connections, admin requests, refusal rows): an IPv4
    address, or the /64 of an IPv6 one, since a host usually owns a whole /64 (SLAAC, privacy
    addresses) and could otherwise multiply each bound by the addresses it takes from it. An
    IPv4-mapped IPv6 address (a dual-stack socket's) is its IPv4 address; anything else, as given."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


class AddressBuckets:
    """A `Bucket` of `per_minute` per client (`client_of` an address), for budgets kept in this
    process (the admin gate's requests, the audit rows of refused requests). At most
    `max_addresses` are kept: beyond that, the full (idle) ones are dropped."""

    def __init__(self, per_minute: int, max_addresses: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self.buckets: dict[str, Bucket] = {}

    def get(self, client: str, now: float) -> Bucket:
        """The bucket of `client`, a `client_of` value."""
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= self.max_addresses:
                self.buckets = {a: b for a, b in self.buckets.items() if b.refill(now) < b.capacity}
            bucket = self.buckets[client] = Bucket(self.per_minute, float(self.per_minute), now)
        return bucket


@dataclass
class _State:
    requests: Bucket | None = None
    tokens: Bucket | None = None
    leases: set[str] = field(default_factory=set)


class MemoryLimiter:
    """Buckets in this process (one gateway); `clock` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._leases = itertools.count()  # lease ids need only be unique in this process

    def _bucket(self, current: Bucket | None, capacity: int | None, now: float) -> Bucket | None:
        if capacity is None:
            return None
        if current is None or current.capacity != capacity:
            return Bucket(capacity, float(capacity), now)
        current.refill(now)
        return current

    async def acquire(self, key: str, limits: Limits) -> Decision:
        now = self._clock()
        st = self._states.setdefault(key, _State())
        st.requests = self._bucket(st.requests, limits.rpm, now)
        st.tokens = self._bucket(st.tokens, limits.tpm, now)
        reason: Reason | None = None
        if limits.max_concurrent is not None and len(st.leases) >= limits.max_concurrent:
            reason = "concurrency"
        elif st.requests is not None and st.requests.level < 1.0:
            reason = "requests"
        elif st.tokens is not None and st.tokens.level <= 0.0:
            reason = "tokens"
        ticket = None
        if reason is None:
            if st.requests is not None:
                st.requests.level -= 1.0
            ticket = Ticket(key, limits, str(next(self._leases)))
            st.leases.add(ticket.lease)
        return Decision(
            allowed=reason is None,
            limits=limits,
            reason=reason,
            remaining_requests=st.requests.level if st.requests else None,
            remaining_tokens=st.tokens.level if st.tokens else None,
            in_flight=len(st.leases),
            ticket=ticket,
        )

    async def release(self, ticket: Ticket, tokens: int) -> None:
        st = self._states.get(ticket.key)
        if st is None:
            return
        st.leases.discard(ticket.lease)
        if st.tokens is not None and tokens > 0:
            st.tokens.refill(self._clock())
            st.tokens.level -= tokens

    async def close(self) -> None:
        return None


# KEYS: requests bucket, tokens bucket, concurrency leases (zset scored by expiry)
# ARGV: rpm, tpm, max_concurrent (0 = unlimited), lease id, lease seconds
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm, maxc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function level(key, cap)
  local v = redis.call('HMGET', key, 'level', 'stamp', 'cap')
  if v[1] == false or tonumber(v[3]) ~= cap then return cap end
  return math.min(cap, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * cap / 60)
end
local function save(key, cap, lvl)
  redis.call('HSET', key, 'level', tostring(lvl), 'stamp', tostring(now), 'cap', tostring(cap))
  redis.call('PEXPIRE', key, math.ceil((cap - lvl) * 60000 / cap) + 1000)
end
local req, tok, inflight = -1, -1, 0
if rpm > 0 then req = level(KEYS[1], rpm) end
if tpm > 0 then tok = level(KEYS[2], tpm) end
if maxc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  inflight = redis.call('ZCARD', KEYS[3])
end
local reason = ''
if maxc > 0 and inflight >= maxc then reason = 'concurrency'
elseif rpm > 0 and req < 1 then reason = 'requests'
elseif tpm > 0 and tok <= 0 then reason = 'tokens' end
if reason == '' then
  if rpm > 0 then req = req - 1 end
  if maxc > 0 then
    local ttl = tonumber(ARGV[5])
    redis.call('ZADD', KEYS[3], now + ttl, ARGV[4])
    redis.call('PEXPIRE', KEYS[3], math.ceil(ttl * 1000) + 1000)
    inflight = inflight + 1
  end
end
if rpm > 0 then save(KEYS[1], rpm, req) end
if tpm > 0 then save(KEYS[2], tpm, tok) end
return {reason, tostring(req), tostring(tok), inflight}
"""

# KEYS: tokens bucket, concurrency leases; ARGV: tpm (0 = unlimited), tokens used, lease id
_RELEASE = """
redis.call('ZREM', KEYS[2], ARGV[3])
local tpm, used = tonumber(ARGV[1]), tonumber(ARGV[2])
if tpm <= 0 or used <= 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'level', 'stamp', 'cap')
local lvl = tpm
if v[1] ~= false and tonumber(v[3]) == tpm then
  lvl = math.min(tpm, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * tpm / 60)
end
lvl = lvl - used
redis.call('HSET', KEYS[1], 'level', tostring(lvl), 'stamp', tostring(now), 'cap', tostring(tpm))
redis.call('PEXPIRE', KEYS[1], math.ceil((tpm - lvl) * 60000 / tpm) + 1000)
return 1
"""


class RedisLimiter:
    """Buckets in Redis, shared by every gateway replica that points at the same server.

    When Redis cannot be reached (refused, or no answer within `TIMEOUT_S`), each limit does what
    `down` says, the outage is logged once when it starts and once when it ends, and for
    `RETRY_S` after a failure Redis is not asked at all, so that an outage costs the requests no
    waiting."""

    TIMEOUT_S = 0.5
    RETRY_S = 1.0

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "wave:rl",
        lease_s: float = DEFAULT_LEASE_S,
        client: Any = None,
        down: RedisDown | None = None,
    ) -> None:
        import redis.asyncio as aioredis

        self._redis = (
            client
            if client is not None
            else aioredis.from_url(url, socket_timeout=self.TIMEOUT_S, socket_connect_timeout=self.TIMEOUT_S)
        )
        self._prefix = prefix
        self._lease_s = lease_s
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)
        self.down = down or RedisDown()
        self._where = redact_urls(url)
        self._retry_at = 0.0
        self.available = True

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.RETRY_S
        if self.available:
            self.available = False
            log.error(
                "Redis at %s is unreachable (%s): limits fail %s",
                self._where,
                type(exc).__name__,
                ", ".join(f"{k} {getattr(self.down, k)}" for k in ("rpm", "tpm", "concurrency")),
            )

    def _without_redis(self, limits: Limits) -> Decision:
        closed = self.down.refused_by(limits)
        if closed is not None:
            return Decision(False, limits, reason="unavailable", unchecked=(closed,))
        return Decision(True, limits, unchecked=self.down.skipped(limits))

    def _keys(self, key: str) -> tuple[str, str, str]:
        base = f"{self._prefix}:{{{key}}}"  # one hash slot per principal (Redis Cluster)
        return f"{base}:req", f"{base}:tok", f"{base}:conc"

    async def acquire(self, key: str, limits: Limits) -> Decision:
        import redis

        if not self.available and time.monotonic() < self._retry_at:
            return self._without_redis(limits)
        lease = uuid.uuid4().hex
        try:
            reason, req, tok, inflight = await self._acquire(
                keys=list(self._keys(key)),
                args=[limits.rpm or 0, limits.tpm or 0, limits.max_concurrent or 0, lease, self._lease_s],
            )
        except (redis.RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return self._without_redis(limits)
        if not self.available:
            self.available = True
            log.warning("Redis at %s answers again: limits are shared again", self._where)
        why = reason.decode() if isinstance(reason, bytes) else str(reason)
        allowed = why == ""
        return Decision(
            allowed=allowed,
            limits=limits,
            reason=None if allowed else why,  # type: ignore[arg-type]
            remaining_requests=float(req) if limits.rpm is not None else None,
            remaining_tokens=float(tok) if limits.tpm is not None else None,
            in_flight=int(inflight),
            ticket=Ticket(key, limits, lease) if allowed else None,
        )

    async def release(self, ticket: Ticket, tokens: int) -> None:
        import redis

        _, tok, conc = self._keys(ticket.key)
        try:
            await self._release(keys=[tok, conc], args=[ticket.limits.tpm or 0, max(0, tokens), ticket.lease])
        except (redis.RedisError, OSError, TimeoutError) as exc:
            # the slot's lease expires by itself; the tokens of this one request go uncharged
            self._failed(exc)

    async def ping(self) -> None:
        await asyncio.wait_for(self._redis.ping(), 5.0)

    async def close(self) -> None:
        await self._redis.aclose()


def make_limiter(redis_url: str | None, down: RedisDown | None = None) -> Limiter:
    return RedisLimiter(redis_url, down=down) if redis_url else MemoryLimiter()
