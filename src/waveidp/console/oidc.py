"""Console sign-in through OpenID Connect: the authorization code flow with PKCE (S256).

The issuer is the one the gateway already trusts for JWTs (`--oidc-issuer`); its endpoints come
from `<issuer>/.well-known/openid-configuration`. The console is a public client by default (no
secret: PKCE protects the code); a confidential client adds `WAVE_CONSOLE_OIDC_SECRET`.

    start:    state, nonce and a PKCE verifier are made; the state binds the browser (a cookie), the
              verifier and nonce wait server-side; the browser goes to the authorization endpoint
    callback: the state must match the cookie; the code is exchanged (with the verifier) at the
              token endpoint; the ID token's signature, issuer, audience (the client id), expiry and
              nonce are checked; its claims say who signed in and whether they are an admin
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from waveidp.errors import WaveError
from waveidp.security.jwt_auth import JwtVerifier, OidcConfig
from waveidp.security.secrets import Secret

PENDING_TTL_S = 600.0


class SignInError(WaveError):
    """An OIDC sign-in that cannot complete (shown on the sign-in page, never with a token)."""


@dataclass(frozen=True)
class ConsoleOidc:
    """The console's OIDC client settings."""

    issuer: str
    client_id: str
    client_secret: Secret | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    admin_claim: str = "groups"  # a list (or space-separated string) of the user's groups or roles
    admin_value: str = "wave-admins"  # members are console admins; everyone else a viewer
    jwks_url: str | None = None  # default: the discovery document's jwks_uri


@dataclass(frozen=True)
class Pending:
    """What a callback needs of the sign-in it ends."""

    verifier: str
    nonce: str
    redirect_uri: str


@dataclass(frozen=True)
class SignedIn:
    subject: str  # preferred_username, email or sub
    admin: bool
    access_token: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def challenge(verifier: str) -> str:
    """PKCE S256: BASE64URL(SHA256(verifier))."""
    return _b64(hashlib.sha256(verifier.encode()).digest())


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


class OidcClient:
    def __init__(self, config: ConsoleOidc, *, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._http = http
        self._meta: dict[str, Any] | None = None
        self._verifier: JwtVerifier | None = None

    async def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        return self._http

    async def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                r = await (await self._client()).get(url)
                r.raise_for_status()
                meta = r.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise SignInError(
                    f"cannot read the identity provider's discovery document {url} ({type(exc).__name__})",
                    fix="check --oidc-issuer and that the provider is reachable from the gateway",
                ) from None
            for key in ("authorization_endpoint", "token_endpoint"):
                if not isinstance(meta.get(key), str):
                    raise SignInError(f"the discovery document {url} has no {key}")
            if meta.get("issuer") != self.config.issuer:
                raise SignInError(
                    f"the discovery document names issuer {meta.get('issuer')!r}, "
                    f"not the configured {self.config.issuer!r}"
                )
            self._meta = meta
        return self._meta

    async def start(self, redirect_uri: str) -> tuple[str, Pending, str]:
        """(state, what the callback will need, URL to send the browser to). The caller keeps the
        pending part server-side under the state (any worker may get the callback)."""
        meta = await self.metadata()
        state = secrets.token_urlsafe(32)
        pending = Pending(
            verifier=secrets.token_urlsafe(48), nonce=secrets.token_urlsafe(24), redirect_uri=redirect_uri
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.config.scopes),
                "state": state,
                "nonce": pending.nonce,
                "code_challenge": challenge(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        return state, pending, f"{meta['authorization_endpoint']}?{query}"

    async def finish(self, pending: Pending, code: str) -> SignedIn:
        """Exchange the code and check the ID token (the state was matched to the browser's cookie
        and `pending` taken from the store by the caller)."""
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "client_id": self.config.client_id,
            "code_verifier": pending.verifier,
        }
        client = await self._client()
        try:
            if self.config.client_secret is not None:
                secret = self.config.client_secret.reveal()
                r = await client.post(
                    meta["token_endpoint"], data=form, auth=httpx.BasicAuth(self.config.client_id, secret)
                )
            else:
                r = await client.post(meta["token_endpoint"], data=form)
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInError(f"the token endpoint did not answer ({type(exc).__name__})") from None
        if r.status_code != 200 or not isinstance(body.get("id_token"), str):
            what = body.get("error_description") or body.get("error") or f"HTTP {r.status_code}"
            raise SignInError(f"the identity provider refused the code: {str(what)[:200]}")
        claims = await self._id_claims(body["id_token"], meta)
        if claims.get("nonce") != pending.nonce:
            raise SignInError("the ID token's nonce does not match this sign-in")
        subject = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])
        admin = self.config.admin_value in _words(claims.get(self.config.admin_claim))
        token = body.get("access_token") if isinstance(body.get("access_token"), str) else None
        return SignedIn(subject=subject, admin=admin, access_token=token)

    async def _id_claims(self, id_token: str, meta: dict[str, Any]) -> dict[str, Any]:
        if self._verifier is None:
            jwks = self.config.jwks_url or meta.get("jwks_uri")
            if not isinstance(jwks, str):
                raise SignInError("the discovery document has no jwks_uri")
            self._verifier = JwtVerifier(
                OidcConfig(jwks_url=jwks, issuer=self.config.issuer, audience=self.config.client_id),
                http=await self._client(),
            )
        try:
            return await self._verifier.claims(id_token)
        except WaveError as exc:
            raise SignInError(f"the ID token was refused: {exc}") from None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
