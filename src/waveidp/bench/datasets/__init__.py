"""Prompt sources: synthetic prompts of chosen lengths and a shipped set of real chat prompts."""

from waveidp.bench.datasets.chat_prompts import ChatPrompts
from waveidp.bench.datasets.lengths import LengthDist
from waveidp.bench.datasets.synthetic import SyntheticPrompts
from waveidp.bench.datasets.tokens import approx_token_count

__all__ = ["ChatPrompts", "LengthDist", "SyntheticPrompts", "approx_token_count"]
