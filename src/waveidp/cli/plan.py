"""`wave plan` verbs."""

from __future__ import annotations

from waveidp.cli._app import app  # noqa: F401
