"""What the guard does when a shared component fails: Redis down (limits fail open or closed, by
limit, logged and counted) and an audit spool at its bound (no request served without its row)."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from state_support import Redis
from waveidp.errors import ApiError
from waveidp.loopback import free_port
from waveidp.security.audit import AuditEntry, AuditLog
from waveidp.security.guard import Authenticator, Guard
from waveidp.security.limits import Limits, RedisDown, RedisLimiter
from waveidp.security.principal import Principal


@pytest.fixture
def own_redis() -> Iterator[Redis]:
    server = Redis(Path(tempfile.mkdtemp(prefix="wave-redis-")), "127.0.0.1", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Counted:
    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()

    def limits_unavailable(self, limit: str, outcome: str) -> None:
        self.seen[(limit, outcome)] += 1


def principal(name: str, limits: Limits) -> Principal:
    return Principal(kind="key", name=name, bucket=f"key:{name}", limits=limits)


def test_redis_down_rates_fail_open_budgets_fail_closed_logged_counted_and_back_when_it_returns(
    own_redis: Redis, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    guard = Guard(Authenticator(), RedisLimiter(own_redis.url), AuditLog(tmp_path / "audit.db"))
    counted = guard.observer = Counted()
    rated = principal("rated", Limits(rpm=2, max_concurrent=1))
    budget = principal("budget", Limits(rpm=100, tpm=1000))

    async def go() -> None:
        first = await guard.admit(rated, "m")
        with pytest.raises(ApiError) as busy:
            await guard.admit(rated, "m")  # its one concurrency slot is taken: Redis counts
        assert busy.value.status == 429
        await guard.finish(first, status=200)
        own_redis.stop()
        with caplog.at_level(logging.ERROR, logger="waveidp.security.limits"):
            t0 = time.monotonic()
            admitted = [await guard.admit(rated, "m") for _ in range(5)]  # over rpm 2 and 1 slot: open
            assert time.monotonic() - t0 < 2.0  # one timeout at most, then Redis is not asked
            with pytest.raises(ApiError) as closed:
                await guard.admit(budget, "m")
        assert closed.value.status == 503 and closed.value.code == "limits_unavailable"
        assert closed.value.headers["Retry-After"] == "1" and "tpm" in closed.value.what
        assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1  # logged once
        assert "Redis at redis://127.0.0.1" in caplog.records[0].message
        assert "rpm open, tpm closed, concurrency open" in caplog.records[0].message
        for a in admitted:
            await guard.finish(a, status=200)
        assert counted.seen[("rpm", "allowed")] == 5 and counted.seen[("concurrency", "allowed")] == 5
        assert counted.seen[("tpm", "refused")] == 1
        own_redis.start()
        await asyncio.sleep(RedisLimiter.RETRY_S + 0.1)
        again = await guard.admit(rated, "m")
        assert not again.decision.unchecked
        with pytest.raises(ApiError) as shared:
            await guard.admit(rated, "m")  # counted in Redis again
        assert shared.value.status == 429
        await guard.finish(again, status=200)
        await guard.close()

    asyncio.run(go())


def test_each_limit_fails_as_configured() -> None:
    everything = Limits(rpm=1, tpm=1, max_concurrent=1)
    assert RedisDown().refused_by(Limits(rpm=1, max_concurrent=1)) is None
    assert RedisDown().refused_by(everything) == "tpm"
    assert RedisDown(tpm="open").refused_by(everything) is None
    assert RedisDown(tpm="open", concurrency="closed").refused_by(everything) == "concurrency"
    assert RedisDown(rpm="closed").refused_by(Limits(rpm=5)) == "rpm"


def test_a_full_audit_spool_stops_admission_until_the_rows_can_be_written(tmp_path: Path) -> None:
    class Down:
        where, shared = "a table that is down", True

        def append(self, entries: object) -> None:
            from waveidp.security.state import StoreUnavailable

            raise StoreUnavailable("down")

        def close(self) -> None:
            return None

    log = AuditLog(Down(), spool_dir=tmp_path / "spool", spool_max_bytes=2000)  # type: ignore[arg-type]
    guard = Guard(Authenticator(), audit=log)
    someone = principal("someone", Limits())

    async def go() -> None:
        while not log.full:
            admission = await guard.admit(someone, "m")
            await guard.finish(admission, status=200)
            assert log.flush()
        with pytest.raises(ApiError) as err:
            await guard.admit(someone, "m")
        assert err.value.status == 503 and err.value.code == "audit_unavailable"

    asyncio.run(go())
    assert log.spooled >= 1 and log.dropped == 0
    log.record(AuditEntry(principal="-", status=401))  # a refusal's row is still kept
    assert log.flush() and log.dropped == 0
    log.close()
