"""Where the time before the first token goes on llama-server: client-seen TTFT vs the server's own
prompt-eval time (`timings.prompt_ms` in the last stream chunk), one request at a time.

    python ttft_gap.py http://127.0.0.1:8080 MODEL [--n 10] [--words 400] [--out gap.json]

Prints, per request: headers received, first content chunk, server prompt_ms, and the gap
(first content - prompt_ms), the part of TTFT that is neither prefill nor network on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

import aiohttp


async def one(
    session: aiohttp.ClientSession, url: str, model: str, words: int, seed: int
) -> dict[str, float]:
    rng = random.Random(seed)
    vocab = ["the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at"]
    prompt = " ".join(rng.choice(vocab) for _ in range(words))
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 8,
        "stream": True,
        "ignore_eos": True,
    }
    t0 = time.perf_counter()
    first = None
    timings: dict[str, float] = {}
    async with session.post(f"{url}/v1/chat/completions", json=body) as r:
        t_headers = time.perf_counter()
        async for raw in r.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            doc = json.loads(line[6:])
            delta = (doc.get("choices") or [{}])[0].get("delta", {})
            if first is None and delta.get("content"):
                first = time.perf_counter()
            timings = doc.get("timings", timings)
    if first is None:
        raise SystemExit(f"no content chunk from {url} (HTTP {r.status})")
    prompt_ms = float(timings.get("prompt_ms", float("nan")))
    return {
        "headers_ms": (t_headers - t0) * 1e3,
        "ttft_ms": (first - t0) * 1e3,
        "prompt_ms": prompt_ms,
        "prompt_n": float(timings.get("prompt_n", 0)),
        "gap_ms": (first - t0) * 1e3 - prompt_ms,
    }


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("model")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--words", type=int, default=400)
    p.add_argument("--out")
    a = p.parse_args()
    rows = []
    # a fresh connection per request: llama-server closes the connection after each stream
    conn = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as s:
        for i in range(a.n + 1):
            row = await one(s, a.url, a.model, a.words, i)
            if i:  # the first request warms up
                rows.append(row)
    for r in rows:
        print(" ".join(f"{k}={v:.1f}" for k, v in r.items()))
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print("median " + " ".join(f"{k}={v:.1f}" for k, v in med.items()))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"rows": rows, "median": med, "url": a.url, "model": a.model}, f, indent=1)


if __name__ == "__main__":
    asyncio.run(main())
