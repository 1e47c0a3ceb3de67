"""A cheap approximate tokenizer, used only where the server reports no `usage`.

Counts words and punctuation marks (regex), which is close to BPE counts for plain English
(within ~20-30%); results label such counts `approx`. The synthetic prompts are built from words
that are single tokens in common BPE vocabularies, so for them the count is near exact.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+|[^\w\s]")


def approx_token_count(text: str) -> int:
    return len(_TOKEN.findall(text))
