"""OIDC/JWT bearer tokens (Authentik, Keycloak, any issuer that publishes a JWKS).

A token is accepted when its signature verifies with a key from the issuer's JWKS (selected by
`kid`), `iss` equals the configured issuer, `aud` contains the configured audience, and `exp`
has not passed (with a small leeway). The JWKS is fetched over HTTP and cached for `jwks_ttl_s`;
an unknown `kid` triggers one early refetch (key rotation), at most every `refetch_min_s`, so a
flood of made-up kids cannot turn the gateway into a JWKS hammer.

Claims map to what a principal may do: `models_claim` (a list or a space-separated string of
glob patterns) names the models; without it, scopes of the form `model:<glob>` in `scopes_claim`
do. A token with neither may use no model (403). `sub` names the principal in the audit log and
keys its rate-limit buckets.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from waveidp.errors import ApiError
from waveidp.security.limits import Limits
from waveidp.security.principal import Principal
from waveidp.security.refusals import unauthorized


@dataclass(frozen=True)
class OidcConfig:
    jwks_url: str
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")
    scopes_claim: str = "scope"
    models_claim: str | None = "wave_models"
    leeway_s: float = 30.0
    jwks_ttl_s: float = 300.0
    refetch_min_s: float = 30.0
    limits: Limits = field(default_factory=Limits)


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return ()


def claims_to_principal(claims: dict[str, Any], config: OidcConfig) -> Principal:
    scopes = frozenset(_words(claims.get(config.scopes_claim)))
    models = _words(claims.get(config.models_claim)) if config.models_claim else ()
    if not models:
        models = tuple(s.removeprefix("model:") for s in sorted(scopes) if s.startswith("model:"))
    subject = str(claims["sub"])
    return Principal(
        kind="jwt", name=subject, bucket=f"sub:{subject}", models=models, limits=config.limits, scopes=scopes
    )


# The algorithms each kind of JWK can verify (RFC 7518); HMAC ("oct") keys verify none here.
_EC_CURVE_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "secp256k1": "ES256K"}
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})


def key_algorithms(jwk: dict[str, Any]) -> frozenset[str]:
    """What a JWK can verify: its `alg` when it names one, else every algorithm of its type."""
    named = jwk.get("alg")
    if isinstance(named, str):
        return frozenset({named})
    kty = jwk.get("kty")
    if kty == "RSA":
        return _RSA_ALGORITHMS
    if kty == "EC":
        curve = _EC_CURVE_ALGORITHMS.get(str(jwk.get("crv")))
        return frozenset({curve}) if curve else frozenset()
    if kty == "OKP":
        return frozenset({"EdDSA"})
    return frozenset()


class JwtVerifier:
    def __init__(self, config: OidcConfig, *, http: Any = None) -> None:
        self.config = config
        self._http = http
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fits: dict[str | None, frozenset[str]] = {}  # kid -> the algorithms its key verifies
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()

    async def _client(self) -> Any:
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=5.0)
        return self._http

    async def _fetch(self) -> None:
        client = await self._client()
        try:
            r = await client.get(self.config.jwks_url)
            r.raise_for_status()
            document = r.json()
            keyset = jwt.PyJWKSet.from_dict(document)
            fits = {k.get("kid"): key_algorithms(k) for k in document["keys"] if isinstance(k, dict)}
        except Exception as exc:  # network, HTTP status, JSON, unusable keys: the IdP is unusable now
            raise ApiError(
                503,
                f"cannot fetch the identity provider's signing keys ({type(exc).__name__})",
                type="server_error",
                code="jwks_unavailable",
            ) from None
        self._keys = {k.key_id: k for k in keyset.keys}
        self._fits = {kid: fits.get(kid, frozenset()) for kid in self._keys}
        self._fetched_at = time.monotonic()

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        age = time.monotonic() - self._fetched_at
        if kid in self._keys and age < self.config.jwks_ttl_s:
            return self._keys[kid]
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = age >= self.config.jwks_ttl_s
            if stale or (kid not in self._keys and age >= self.config.refetch_min_s):
                await self._fetch()
        if kid in self._keys:
            return self._keys[kid]
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        raise unauthorized("bearer token is signed by an unknown key", code="invalid_token")

    async def verify(self, token: str) -> Principal:
        return claims_to_principal(await self.claims(token), self.config)

    async def claims(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature, issuer, audience and expiry check out (401 if not);
        the console reads an OIDC ID token's claims through this."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise unauthorized("malformed bearer token", code="invalid_token") from None
        if header.get("alg") not in self.config.algorithms:
            raise unauthorized(
                "bearer token uses a signature algorithm that is not allowed", code="invalid_token"
            )
        key = await self._key(header.get("kid"))
        alg = header["alg"]
        if alg not in self._fits.get(key.key_id, frozenset()):
            raise unauthorized(
                f"bearer token says algorithm {alg}, which its signing key ({key.key_type} key "
                f"'{key.key_id}') cannot verify",
                code="invalid_token",
            )
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("bearer token has expired", code="token_expired") from None
        except jwt.InvalidAudienceError:
            raise unauthorized(
                "bearer token is not meant for this gateway (audience)", code="invalid_token"
            ) from None
        except jwt.InvalidIssuerError:
            raise unauthorized(
                "bearer token comes from an issuer this gateway does not trust", code="invalid_token"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized(f"bearer token lacks the '{exc.claim}' claim", code="invalid_token") from None
        except (jwt.PyJWTError, TypeError, ValueError):
            # PyJWT raises TypeError/ValueError for a key it cannot use with the token's algorithm
            raise unauthorized("bearer token signature or claims are invalid", code="invalid_token") from None
        return dict(claims)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
