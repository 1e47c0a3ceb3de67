"""Any OpenAI-compatible server: healthy when `/v1/models` answers; no load metrics assumed."""

from __future__ import annotations

from waveidp.engines._adapter import EngineAdapter

ADAPTER = EngineAdapter(kind="openai", health_path="/v1/models", metrics_path=None)
