from __future__ import annotations

from waveidp.errors import WaveError


class RenderError(WaveError):
    """The fleet cannot be rendered as written (a model that does not fit, a port clash, ...)."""
