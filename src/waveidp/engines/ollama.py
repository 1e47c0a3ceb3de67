"""Ollama's OpenAI-compatible API: `/api/version` answers when it is up; it exports no Prometheus metrics."""

from __future__ import annotations

from waveidp.engines._adapter import EngineAdapter

ADAPTER = EngineAdapter(kind="ollama", health_path="/api/version", metrics_path=None)
