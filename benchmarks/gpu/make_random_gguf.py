"""Write a llama-architecture GGUF with random f16 weights in the shape of a real model.

Decode and prefill speed of llama.cpp depend on tensor shapes and types, never on weight values
(no sparsity is exploited), so a random-weight file of Llama-3.1-8B's shape measures what the real
one would, without carrying 16 GB onto a machine that cannot download. Output lengths are forced
by the benchmark (ignore_eos), since random weights produce no end-of-text on purpose.

The tokenizer is borrowed from a small real GGUF (SmolLM2's byte-level BPE) and padded with
plain-ASCII normal tokens up to the model's vocabulary size, so embedding and output matrices keep
their real size and every sampled token detokenizes to visible text.

    python make_random_gguf.py tokenizer SmolLM2.gguf tok.json.gz        # here, small, carried
    python make_random_gguf.py model llama-3.1-8b tok.json.gz out-f16.gguf  # on the GPU machine
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    rope_base: float
    context: int
    tied: bool


# From the models' config.json on Hugging Face (meta-llama/Llama-3.1-8B, HuggingFaceTB/SmolLM2-135M).
SHAPES = {
    "llama-3.1-8b": Shape(4096, 32, 32, 8, 14336, 128256, 500000.0, 131072, tied=False),
    "smollm2-135m": Shape(576, 30, 9, 3, 1536, 49152, 100000.0, 8192, tied=True),
}


def dump_tokenizer(src: Path, dst: Path) -> None:
    import gguf

    reader = gguf.GGUFReader(str(src))

    def field(name: str) -> object:
        return reader.fields[name].contents() if name in reader.fields else None

    doc = {
        "source": src.name,
        "model": field("tokenizer.ggml.model"),
        "pre": field("tokenizer.ggml.pre"),
        "tokens": field("tokenizer.ggml.tokens"),
        "token_type": field("tokenizer.ggml.token_type"),
        "merges": field("tokenizer.ggml.merges"),
        "bos": field("tokenizer.ggml.bos_token_id"),
        "eos": field("tokenizer.ggml.eos_token_id"),
        "chat_template": field("tokenizer.chat_template"),
    }
    with gzip.open(dst, "wt") as f:
        json.dump(doc, f)
    print(f"{dst}: {len(doc['tokens'])} tokens, {len(doc['merges'])} merges")  # type: ignore[arg-type]


def _tensors(s: Shape) -> list[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) in llama.cpp's llama layout; numpy shape is (rows, cols) = GGUF reversed."""
    head_dim = s.hidden // s.heads
    out: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (s.vocab, s.hidden))]
    for i in range(s.layers):
        b = f"blk.{i}"
        out += [
            (f"{b}.attn_norm.weight", (s.hidden,)),
            (f"{b}.attn_q.weight", (s.heads * head_dim, s.hidden)),
            (f"{b}.attn_k.weight", (s.kv_heads * head_dim, s.hidden)),
            (f"{b}.attn_v.weight", (s.kv_heads * head_dim, s.hidden)),
            (f"{b}.attn_output.weight", (s.hidden, s.heads * head_dim)),
            (f"{b}.ffn_norm.weight", (s.hidden,)),
            (f"{b}.ffn_gate.weight", (s.ffn, s.hidden)),
            (f"{b}.ffn_up.weight", (s.ffn, s.hidden)),
            (f"{b}.ffn_down.weight", (s.hidden, s.ffn)),
        ]
    out.append(("output_norm.weight", (s.hidden,)))
    if not s.tied:
        out.append(("output.weight", (s.vocab, s.hidden)))
    return out


def write_model(name: str, tokenizer: Path, dst: Path, seed: int = 0) -> None:
    import gguf

    s = SHAPES[name]
    with gzip.open(tokenizer, "rt") as f:
        tok = json.load(f)
    tokens: list[str] = list(tok["tokens"])
    types: list[int] = list(tok["token_type"])
    if len(tokens) > s.vocab:
        sys.exit(f"tokenizer has {len(tokens)} tokens, more than {name}'s vocabulary {s.vocab}")
    pad = s.vocab - len(tokens)
    tokens += [f"xpad{i}" for i in range(pad)]
    types += [int(gguf.TokenType.NORMAL)] * pad

    w = gguf.GGUFWriter(str(dst), "llama")
    w.add_name(f"random-weight {name} (benchmarks/gpu/make_random_gguf.py, seed {seed})")
    w.add_context_length(s.context)
    w.add_embedding_length(s.hidden)
    w.add_block_count(s.layers)
    w.add_feed_forward_length(s.ffn)
    w.add_head_count(s.heads)
    w.add_head_count_kv(s.kv_heads)
    w.add_rope_freq_base(s.rope_base)
    w.add_rope_dimension_count(s.hidden // s.heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(s.vocab)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    w.add_tokenizer_model(tok["model"])
    if tok.get("pre"):
        w.add_tokenizer_pre(tok["pre"])
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(tok["merges"])
    w.add_bos_token_id(int(tok["bos"]))
    w.add_eos_token_id(int(tok["eos"]))
    w.add_add_bos_token(False)
    if tok.get("chat_template"):
        w.add_chat_template(tok["chat_template"])

    specs = _tensors(s)
    for tname, shape in specs:
        dtype = np.float32 if len(shape) == 1 else np.float16
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        w.add_tensor_info(tname, shape, np.dtype(dtype), nbytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    # One random pool, sliced at a different offset per tensor: generating 8e9 normals would take
    # minutes and the values do not matter for speed. Small std keeps activations finite.
    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(1 << 26, dtype=np.float32) * 0.02).astype(np.float16)
    t0 = time.perf_counter()
    total = 0
    for i, (_tname, shape) in enumerate(specs):
        if len(shape) == 1:
            w.write_tensor_data(np.ones(shape, dtype=np.float32))
            continue
        n = int(np.prod(shape))
        start = (i * 7919) % pool.size
        reps = -(-(n + start) // pool.size)
        data = np.tile(pool, reps)[start : start + n].reshape(shape) if reps > 1 else pool[start : start + n]
        w.write_tensor_data(np.ascontiguousarray(data).reshape(shape))
        total += n
    w.close()
    dt = time.perf_counter() - t0
    print(
        f"{dst}: {name}, {total / 1e9:.2f} G matmul/embedding params, {dst.stat().st_size / 1e9:.2f} GB "
        f"in {dt:.1f} s ({pad} padding tokens)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tokenizer", help="extract a tokenizer from a GGUF into gzipped JSON")
    t.add_argument("src", type=Path)
    t.add_argument("dst", type=Path)
    m = sub.add_parser("model", help="write a random-weight f16 GGUF")
    m.add_argument("shape", choices=sorted(SHAPES))
    m.add_argument("tokenizer", type=Path)
    m.add_argument("dst", type=Path)
    m.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.cmd == "tokenizer":
        dump_tokenizer(a.src, a.dst)
    else:
        write_model(a.shape, a.tokenizer, a.dst, a.seed)


if __name__ == "__main__":
    main()
