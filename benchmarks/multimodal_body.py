"""How large the request body of a multimodal chat is, as Open WebUI sends it, with phone photos.

Open WebUI (image compression off, its default) attaches an image as the photo file itself, read
into a `data:image/jpeg;base64,...` URL, and sends it as an `image_url` part of the user message;
every later turn re-sends the whole conversation, earlier photos included. This script makes
photo-like JPEGs of phone-camera sizes (12 MP, 4032x3024, the default of current phones' main
cameras: noise whose amplitude spectrum falls as 1/f^1.2, as natural scenes' do (1/f^1.0-1.4),
plus a little sensor noise, saved as JPEG quality 90; ~3.4 MB each, 0.28 bytes a pixel, as a
12 MP phone JPEG is, 3-4 MB; `--alpha 1.0` makes busier ~6 MB ones), builds those chat bodies
(one photo; three photos in one message; a second turn with one more photo), and prints their
sizes against the gateway's default `gateway.max_body_bytes`. With `--gateway`, it also sends
the largest body through a `wave serve` over `wave emulate` at the default limit and reports
the status.

    .venv/bin/python benchmarks/multimodal_body.py [--gateway]

Results: benchmarks/results/multimodal_body.json (with the exact command).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from PIL import Image

from waveidp.fleet.models import GatewayConfig
from waveidp.loopback import free_port, wait_http

BENCH_KEY = "bench-key-0123456789abcdefghijkl"  # passes check_strength
RESULTS = Path(__file__).parent / "results" / "multimodal_body.json"
WAVE = Path(sys.executable).with_name("wave")
SIZE = (4032, 3024)  # 12 MP, 4:3


def photo(seed: int, alpha: float = 1.2, size: tuple[int, int] = SIZE, quality: int = 90) -> bytes:
    """A JPEG with a photo's statistics: a 1/f^alpha amplitude spectrum per channel, mixed across
    channels, plus sensor noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    falloff = np.maximum(np.hypot(fx, fy), 1.0 / max(w, h)) ** -alpha
    channels = []
    for _ in range(3):
        spectrum = falloff * np.exp(2j * np.pi * rng.random((h, w // 2 + 1)))
        plane = np.fft.irfft2(spectrum, s=(h, w))
        plane = (plane - plane.mean()) / (plane.std() + 1e-9)
        channels.append(plane)
    mixed = np.stack(channels, axis=-1) @ np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    image = np.clip(128 + 40 * mixed + rng.normal(0, 1.5, (h, w, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=quality)
    return out.getvalue()


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


def user_turn(text: str, photos: list[bytes]) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            *({"type": "image_url", "image_url": {"url": data_url(p)}} for p in photos),
        ],
    }


def chat_body(model: str, messages: list[dict[str, Any]]) -> bytes:
    # Open WebUI's own fields around the messages (what it forwards to an OpenAI connection)
    return orjson.dumps(
        {"stream": True, "model": model, "messages": messages, "stream_options": {"include_usage": True}}
    )


def bodies(model: str, photos: list[bytes]) -> dict[str, bytes]:
    first = user_turn("What is in this photo?", photos[:1])
    three = user_turn("Compare these three photos.", photos[:3])
    answer = {"role": "assistant", "content": "The three photos show " + "a scene, " * 60}
    return {
        "one photo": chat_body(model, [first]),
        "three photos in one message": chat_body(model, [three]),
        "second turn, a fourth photo": chat_body(
            model, [three, answer, user_turn("And this one?", photos[3:4])]
        ),
    }


@contextlib.contextmanager
def gateway_over_emulator(work: Path) -> Any:
    """`wave emulate` and `wave serve` at the default body limit (no --max-body-bytes)."""
    emu_port, gw_port = free_port(), free_port()
    env = {**os.environ, "WAVE_HOME": str(work), "WAVE_API_KEY": BENCH_KEY}
    procs = [
        subprocess.Popen(
            [str(WAVE), "emulate", "--model", "vision", "--step-ms", "1", "--prefill-ms", "1",
             "--port", str(emu_port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{emu_port}/health", timeout=20)
        procs.append(
            subprocess.Popen(
                [str(WAVE), "serve", "--upstream", f"http://127.0.0.1:{emu_port}", "--port", str(gw_port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{gw_port}/ready", timeout=20)
        yield f"http://127.0.0.1:{gw_port}"
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", action="store_true", help="send the largest body through wave serve")
    parser.add_argument("--alpha", type=float, default=1.2, help="spectral falloff: lower is busier, larger")
    args = parser.parse_args()
    t0 = time.perf_counter()
    photos = [photo(seed, args.alpha) for seed in range(4)]
    limit = GatewayConfig().max_body_bytes
    found = {name: len(body) for name, body in bodies("vision", photos).items()}
    print(f"photos (JPEG, {SIZE[0]}x{SIZE[1]}, q90): " + ", ".join(f"{len(p) / 1e6:.2f} MB" for p in photos))
    for name, size in found.items():
        print(
            f"{name:32s} {size / 2**20:6.2f} MiB  ({size / limit:.0%} of the default {limit / 2**20:.0f} MiB)"
        )
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "photo_bytes": [len(p) for p in photos],
        "photo_pixels": list(SIZE),
        "alpha": args.alpha,
        "body_bytes": found,
        "default_max_body_bytes": limit,
    }
    if args.gateway:
        largest = max(bodies("vision", photos).values(), key=len)
        with tempfile.TemporaryDirectory() as work, gateway_over_emulator(Path(work)) as url:
            r = httpx.post(
                url + "/v1/chat/completions",
                content=largest,
                headers={"authorization": f"Bearer {BENCH_KEY}", "content-type": "application/json"},
                timeout=60,
            )
        print(f"largest body through the gateway at the default limit: HTTP {r.status_code}")
        result["gateway_status_largest"] = r.status_code
    result["seconds"] = round(time.perf_counter() - t0, 1)
    out = RESULTS if args.alpha == 1.2 else RESULTS.with_name(f"multimodal_body_alpha{args.alpha:g}.json")
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
