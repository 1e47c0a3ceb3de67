"""Who is calling: what the authenticator returns and the rest of the gateway relies on."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

from waveidp.security.limits import Limits


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    `name` is what the audit log records (the key's name, or the token's subject); `bucket` is the
    identity limits are kept under (`key:<id>` or `sub:<subject>`), so renaming a key keeps its
    buckets and two subjects never share one.
    """

    kind: Literal["key", "jwt", "anonymous"]
    name: str
    bucket: str
    models: tuple[str, ...] = ("*",)
    limits: Limits = field(default_factory=Limits)
    scopes: frozenset[str] = frozenset()

    def may_use(self, model: str) -> bool:
        """Whether `model` matches one of the principal's glob patterns (case-sensitive)."""
        if "*" in self.models:  # the common case; fnmatchcase costs ~3 us a request
            return True
        return any(fnmatchcase(model, pattern) for pattern in self.models)


ANONYMOUS = Principal(kind="anonymous", name="anonymous", bucket="anonymous")
