from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from waveidp.errors import ApiError
from waveidp.security import audit
from waveidp.security.audit import AuditLog
from waveidp.security.guard import Authenticator, Guard, bearer_token
from waveidp.security.keys import KeyStore


def test_bearer_token_sources() -> None:
    assert bearer_token({"authorization": "Bearer abc"}) == "abc"
    assert bearer_token({"authorization": "bearer  abc "}) == "abc"
    assert bearer_token({"authorization": "Basic abc"}) is None
    assert bearer_token({"x-api-key": "k"}) == "k"
    assert bearer_token({}) is None


def test_guard_authenticates_scopes_limits_and_audits(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    key = store.create("team-a", models=["smollm2-*"], rpm=2, tpm=100).key.reveal()
    log = AuditLog(tmp_path / "audit.db")
    guard = Guard(Authenticator(keys=store), audit=log)
    headers = {"authorization": f"Bearer {key}"}

    async def go() -> list[int]:
        statuses = []
        for h, model in [
            ({}, "smollm2-135m"),
            ({"authorization": "Bearer wave-sk-nope"}, "smollm2-135m"),
            (headers, "llama-70b"),
            (headers, "smollm2-135m"),
            (headers, "smollm2-135m"),
            (headers, "smollm2-135m"),
        ]:
            principal = None
            try:
                principal = await guard.authenticate(h)
                admission = await guard.admit(principal, model, endpoint="/v1/chat/completions")
            except ApiError as r:
                guard.refused(r, principal=principal, endpoint="/v1/chat/completions", model=model)
                statuses.append(r.status)
                if r.status == 429:
                    assert 25 <= int(r.headers["Retry-After"]) <= 30  # rpm 2: one back every 30 s
                    assert r.headers["x-ratelimit-remaining-requests"] == "0"
                    assert r.type == "rate_limit_error" and key not in r.what
                continue
            assert admission.headers["x-ratelimit-limit-requests"] == "2"
            await guard.finish(admission, status=200, backend="local", tokens_in=20, tokens_out=30)
            statuses.append(200)
        await guard.close()
        return statuses

    assert asyncio.run(go()) == [401, 401, 403, 200, 200, 429]
    rows = list(audit.rows(log.path))
    assert [r["status"] for r in rows] == [401, 401, 403, 200, 200, 429]
    assert [r["principal"] for r in rows] == ["-", "-", "team-a", "team-a", "team-a", "team-a"]
    assert rows[3]["tokens_in"] == 20 and rows[3]["backend"] == "local" and rows[3]["latency_s"] >= 0
    assert audit.verify(log.path).ok


def test_without_keys_or_oidc_everyone_is_anonymous() -> None:
    guard = Guard(Authenticator())
    principal = asyncio.run(guard.authenticate({}))
    assert principal.kind == "anonymous" and principal.may_use("anything")
    assert not guard.authenticator.enabled


@pytest.mark.parametrize("concurrent", [1])
def test_concurrency_limit_until_finish(tmp_path: Path, concurrent: int) -> None:
    store = KeyStore(tmp_path / "keys.db")
    key = store.create("solo", max_concurrent=concurrent).key.reveal()
    guard = Guard(Authenticator(keys=store))

    async def go() -> None:
        p = await guard.authenticate({"authorization": f"Bearer {key}"})
        first = await guard.admit(p, "m")
        with pytest.raises(ApiError) as info:
            await guard.admit(p, "m")
        assert info.value.status == 429 and info.value.code == "rate_limit_concurrency"
        await guard.finish(first, status=200)
        await guard.finish(await guard.admit(p, "m"), status=200)

    asyncio.run(go())


def test_unlimited_principal_takes_no_limiter_ticket(tmp_path: Path) -> None:
    """The bootstrap key has no limits: admitting it must not cost a limiter round trip."""
    from waveidp.security.guard import DEFAULT_PRINCIPAL
    from waveidp.security.limits import Limits
    from waveidp.security.principal import Principal

    guard = Guard(Authenticator())

    async def go() -> None:
        free = await guard.admit(DEFAULT_PRINCIPAL, "m", endpoint="chat")
        assert free.decision.allowed and free.decision.ticket is None and free.headers == {}
        await guard.finish(free, status=200)
        limited = Principal(kind="key", name="k", bucket="key:k", limits=Limits(max_concurrent=1))
        first = await guard.admit(limited, "m")
        assert first.decision.ticket is not None
        with pytest.raises(ApiError):
            await guard.admit(limited, "m")
        await guard.finish(first, status=200)
        await guard.finish(await guard.admit(limited, "m"), status=200)

    asyncio.run(go())


def test_refused_requests_of_one_client_add_rows_within_the_configured_budget(tmp_path: Path) -> None:
    """A flood of refusals (401s without a key) from one client: at most its budget of rows
    (`gateway.refused_audit_rows_per_minute`), then one row saying how many were left out. A client
    is an IPv4 address or an IPv6 /64 (a host owns one): the /64's addresses share a budget,
    another /64 keeps its own."""
    from waveidp.fleet.models import GatewayConfig, RoutingConfig
    from waveidp.gateway.compose import GatewaySetup, compose
    from waveidp.security.gateway_security import SecurityOptions
    from waveidp.security.refusals import unauthorized

    with pytest.raises(ValueError, match="refused_audit_rows_per_minute"):
        GatewayConfig.model_validate({"refused_audit_rows_per_minute": 0})
    config = GatewayConfig.model_validate({"refused_audit_rows_per_minute": 120})  # 2 a second
    setup = GatewaySetup([], config, RoutingConfig(), SecurityOptions(auth=False, audit_db=tmp_path / "a.db"))
    refusal = unauthorized("missing API key", "missing_api_key")
    with compose(setup) as app:
        guard = app.gateway.guard
        log = guard.audit
        assert log is not None
        for i in range(300):  # 300 addresses of one /64
            guard.refused(refusal, endpoint="chat", client=f"2001:db8:7:7:{i:x}::1")
        guard.refused(refusal, endpoint="chat", client="2001:db8:7:8::1")
        assert log.flush()
        rows = list(audit.rows(log.path))
        assert len(rows) == 121 and rows[-1]["endpoint"] == "chat"
        import time

        time.sleep(0.7)  # a row's worth of budget back
        guard.refused(refusal, endpoint="chat", client="2001:db8:7:7:ffff::2")
        assert log.flush()
        rows = list(audit.rows(log.path))[121:]
        assert [(r["endpoint"], r["status"]) for r in rows] == [
            ("refusals-not-audited:180 from 2001:db8:7:7::/64", 401),
            ("chat", 401),
        ]
    assert audit.verify(log.path).ok


def test_a_client_is_an_ipv4_address_or_an_ipv6_64() -> None:
    """What every per-client bound counts by: the connection cap (uncapped networks apart), the
    admin gate's and the refusal rows' budgets."""
    from waveidp.gateway.http_protocol import ConnectionLimits
    from waveidp.security.limits import client_of

    limits = ConnectionLimits(uncapped=("127.0.0.0/8", "::1/128", "fd00:1::/64"))
    assert limits.client("2001:db8:1:2::5") == limits.client("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert limits.client("2001:db8:1:3::5") == "2001:db8:1:3::/64"
    assert limits.client("fe80::1%eth0") == "fe80::/64"
    assert limits.client("10.1.2.3") == client_of("::ffff:10.1.2.3") == "10.1.2.3"
    assert limits.client("::ffff:127.0.0.1") is None and limits.client("::1") is None
    assert limits.client("fd00:1::9") is None and limits.client("fd00:2::9") == "fd00:2::/64"
