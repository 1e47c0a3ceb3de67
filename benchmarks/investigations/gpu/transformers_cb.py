"""transformers' continuous batching (`generate_batch`) on a random-weight Llama-3.1-8B in bf16.

Speed does not depend on weight values, so the model is built from the real config with random
weights on the GPU (no download). For each batch size N, N prompts of PROMPT tokens are submitted at
once (like the first wave of a closed-loop sweep at concurrency N) and OUTPUT tokens are generated
per request (greedy; EOS is practically unreachable with random weights and the count is checked).

    python transformers_cb.py --out results.json [--sizes 1,4,16,64] [--prompt 542] [--output 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import traceback
from typing import Any

import torch
from transformers_model import LLAMA_31_8B


def build_model(attn: str) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**LLAMA_31_8B, bos_token_id=128000, eos_token_id=128001)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    return model.eval()


def stats(xs: list[float]) -> dict[str, float] | None:
    return {"p50": statistics.median(xs), "mean": statistics.fmean(xs), "n": len(xs)} if xs else None


def run_batch(model: Any, n: int, prompt: int, output: int) -> dict[str, Any]:
    from transformers.generation import GenerationConfig

    g = torch.Generator().manual_seed(n)
    inputs = [torch.randint(1000, 120000, (prompt,), generator=g).tolist() for _ in range(n)]
    gc = GenerationConfig(max_new_tokens=output, do_sample=False, eos_token_id=None, pad_token_id=0)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    outs = model.generate_batch(
        inputs=inputs, generation_config=gc, record_timestamps=True, progress_bar=False
    )
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    gen = [len(o.generated_tokens) for o in outs.values()]
    ttft, itl = [], []
    first = next(iter(outs.values()))
    fields = sorted(k for k in dir(first) if not k.startswith("_"))
    for o in outs.values():
        ts = getattr(o, "timestamps", None)
        created = getattr(o, "created_time", None)
        if ts and created is not None:
            ttft.append((ts[0] - created) * 1e3)
            if len(ts) > 1:
                itl.append((ts[-1] - ts[0]) / (len(ts) - 1) * 1e3)
    return {
        "requests": n,
        "prompt_tokens": prompt,
        "output_tokens_asked": output,
        "output_tokens": stats([float(x) for x in gen]),
        "wall_s": wall,
        "output_tokens_per_s": sum(gen) / wall,
        "ttft_ms": stats(ttft),
        "itl_ms": stats(itl),
        "output_fields": fields,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 1e9,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--sizes", default="1,4,16,64")
    p.add_argument("--prompt", type=int, default=542)
    p.add_argument("--output", type=int, default=128)
    p.add_argument("--attn", default="paged|sdpa,sdpa_paged")
    a = p.parse_args()
    import transformers

    doc: dict[str, Any] = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(),
        "points": [],
        "errors": [],
    }
    model = None
    for attn in a.attn.split(","):
        try:
            t = time.perf_counter()
            model = build_model(attn)
            run_batch(model, 1, 16, 4)  # warm-up, also proves the attention implementation works
            doc["attn_implementation"] = attn
            doc["build_s"] = time.perf_counter() - t
            break
        except Exception:
            doc["errors"].append({"attn": attn, "error": traceback.format_exc()[-1500:]})
            print(doc["errors"][-1]["error"])
            model = None
            torch.cuda.empty_cache()
    for n in [int(x) for x in a.sizes.split(",")] if model is not None else []:
        try:
            pt = run_batch(model, n, a.prompt, a.output)
            doc["points"].append(pt)
            print(json.dumps({k: v for k, v in pt.items() if k != "output_fields"}))
        except Exception:
            doc["errors"].append({"n": n, "error": traceback.format_exc()[-1500:]})
            print(doc["errors"][-1]["error"])
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
