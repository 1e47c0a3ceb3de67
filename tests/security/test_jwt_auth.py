"""OIDC bearer tokens against a JWKS served by a real local HTTP server, with keys minted here."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from waveidp.errors import ApiError
from waveidp.security.jwt_auth import JwtVerifier, OidcConfig
from waveidp.security.limits import Limits
from waveidp.security.principal import Principal

ISSUER = "https://auth.example.test/application/o/wave/"
AUDIENCE = "wave-gateway"


def new_key(kid: str) -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": kid, "use": "sig", "alg": "RS256"}


KEY_A, JWK_A = new_key("a")
KEY_B, JWK_B = new_key("b")


def mint(key: rsa.RSAPrivateKey = KEY_A, kid: str = "a", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": now,
        "exp": now + 300,
        "scope": "openid model:smollm2-* model:qwen3",
        **claims,
    }
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": kid}
    )


@asynccontextmanager
async def jwks_server(keys: list[dict[str, Any]]) -> AsyncIterator[tuple[str, list[int]]]:
    hits = [0]

    async def handler(request: web.Request) -> web.Response:
        hits[0] += 1
        return web.json_response({"keys": keys})

    app = web.Application()
    app.router.add_get("/jwks", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/jwks", hits
    finally:
        await runner.cleanup()


def config(url: str, **kw: Any) -> OidcConfig:
    return OidcConfig(jwks_url=url, issuer=ISSUER, audience=AUDIENCE, **kw)


async def outcome(verifier: JwtVerifier, token: str) -> Principal | ApiError:
    try:
        return await verifier.verify(token)
    except ApiError as r:
        return r


def test_valid_expired_wrong_audience_wrong_issuer_unknown_kid() -> None:
    async def go() -> dict[str, Any]:
        async with jwks_server([JWK_A]) as (url, hits):
            v = JwtVerifier(config(url, limits=Limits(rpm=5), refetch_min_s=3600))
            try:
                results = {
                    "valid": await outcome(v, mint()),
                    "expired": await outcome(v, mint(exp=int(time.time()) - 120, iat=int(time.time()) - 600)),
                    "audience": await outcome(v, mint(aud="someone-else")),
                    "issuer": await outcome(v, mint(iss="https://evil.example.test/")),
                    "unknown_kid": await outcome(v, mint(KEY_B, "b")),
                    "forged": await outcome(v, mint(KEY_B, "a")),
                    "no_sub": await outcome(v, mint(sub=None)),
                    "garbage": await outcome(v, "not.a.jwt"),
                    "hs256": await outcome(v, jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256")),
                }
                results["fetches"] = hits[0]
                return results
            finally:
                await v.close()

    r = asyncio.run(go())
    valid = r.pop("valid")
    assert isinstance(valid, Principal)
    assert valid.name == "user-42" and valid.bucket == "sub:user-42" and valid.limits == Limits(rpm=5)
    assert valid.may_use("smollm2-135m") and valid.may_use("qwen3") and not valid.may_use("llama-70b")
    assert r.pop("fetches") == 1  # cached; the unknown kid did not refetch inside refetch_min_s
    for name, result in r.items():
        assert isinstance(result, ApiError), name
        assert result.status == 401 and result.type == "authentication_error", name
    assert r["expired"].code == "token_expired"
    assert "audience" in r["audience"].what and "issuer" in r["issuer"].what
    assert "unknown key" in r["unknown_kid"].what and "'sub'" in r["no_sub"].what


def test_key_rotation_refetches_the_jwks_once() -> None:
    async def go() -> tuple[Any, Any, int]:
        keys = [JWK_A]
        async with jwks_server(keys) as (url, hits):
            v = JwtVerifier(config(url, refetch_min_s=0))
            try:
                first = await outcome(v, mint())
                keys.append(JWK_B)  # the IdP rotates in a new signing key
                second = await outcome(v, mint(KEY_B, "b", wave_models=["gemma-*"]))
                return first, second, hits[0]
            finally:
                await v.close()

    first, second, fetches = asyncio.run(go())
    assert isinstance(first, Principal) and isinstance(second, Principal)
    assert second.models == ("gemma-*",)  # the models claim wins over model: scopes
    assert fetches == 2


def test_unreachable_jwks_is_a_clear_503() -> None:
    async def go() -> Any:
        v = JwtVerifier(config("http://127.0.0.1:9/jwks"))
        try:
            return await outcome(v, mint())
        finally:
            await v.close()

    r = asyncio.run(go())
    assert isinstance(r, ApiError) and r.status == 503 and r.code == "jwks_unavailable"


@pytest.mark.parametrize("scope", ["openid", ""])
def test_token_without_model_claims_may_use_no_model(scope: str) -> None:
    async def go() -> Any:
        async with jwks_server([JWK_A]) as (url, _):
            v = JwtVerifier(config(url))
            try:
                return await outcome(v, mint(scope=scope))
            finally:
                await v.close()

    p = asyncio.run(go())
    assert isinstance(p, Principal) and not p.may_use("smollm2-135m")
