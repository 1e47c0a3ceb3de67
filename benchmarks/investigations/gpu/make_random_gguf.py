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

A real small GGUF can travel as a *skeleton* instead: its header (every metadata key including the
tokenizer, every tensor's name, shape and type, byte for byte) without the tensor data, a few MB
gzipped. `fill` writes a file of exactly the real size, header identical, each tensor's bytes
random but with every quantization block's f16 scale fields set to small finite values (random
bytes would give NaN/inf scales) and float tensors small normals:

    python make_random_gguf.py skeleton gemma-3-270m-q4_k_m.gguf gemma.skel.gz   # here
    python make_random_gguf.py fill gemma.skel.gz gemma-random.gguf              # on the GPU machine
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


# From the models' config.json on Hugging Face (meta-llama/Llama-3.1-8B, meta-llama/Llama-3.2-3B,
# HuggingFaceTB/SmolLM2-135M).
SHAPES = {
    "llama-3.1-8b": Shape(4096, 32, 32, 8, 14336, 128256, 500000.0, 131072, tied=False),
    "llama-3.2-3b": Shape(3072, 28, 24, 8, 8192, 128256, 500000.0, 131072, tied=True),
    "smollm2-135m": Shape(576, 30, 9, 3, 1536, 49152, 100000.0, 8192, tied=True),
    # the generated Llama-shaped 1.07B of benchmarks/sizing_cpu.py (SHAPE there), SmolLM2's vocabulary
    "wave-random-llama-1b": Shape(2048, 16, 32, 8, 8192, 49152, 10000.0, 4096, tied=True),
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
    w.add_name(f"random-weight {name} (benchmarks/investigations/gpu/make_random_gguf.py, seed {seed})")
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


# Byte offsets of the f16 scale/min fields inside one block, per quantization type (ggml-common.h).
_F16_FIELDS = {
    "Q4_0": (0,),
    "Q4_1": (0, 2),
    "Q5_0": (0,),
    "Q5_1": (0, 2),
    "Q8_0": (0,),
    "Q8_1": (0, 2),
    "Q2_K": (80, 82),
    "Q3_K": (108,),
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q6_K": (208,),
}
_FLOAT = {"F32": np.float32, "F16": np.float16}
_MAGIC = b"WAVESKEL1\n"


def write_skeleton(src: Path, dst: Path) -> None:
    """The real file's header bytes plus its tensor table (name, type, offset, bytes), gzipped."""
    import gguf

    reader = gguf.GGUFReader(str(src))
    with open(src, "rb") as f:
        header = f.read(reader.data_offset)
    table = [
        {
            "name": t.name,
            "type": t.tensor_type.name,
            "shape": [int(x) for x in t.shape],
            "offset": int(t.data_offset) - reader.data_offset,
            "bytes": int(t.n_bytes),
        }
        for t in reader.tensors
    ]
    unknown = sorted({t["type"] for t in table} - set(_F16_FIELDS) - set(_FLOAT))
    if unknown:
        sys.exit(f"{src}: no fill rule for tensor types {unknown}")
    meta = {
        "source": src.name,
        "size": src.stat().st_size,
        "data_offset": reader.data_offset,
        "tensors": table,
    }
    blob = json.dumps(meta).encode()
    with gzip.open(dst, "wb") as f:
        f.write(_MAGIC + len(blob).to_bytes(8, "little") + blob + header)
    print(f"{dst}: {len(table)} tensors, header {len(header)} B, {dst.stat().st_size / 1e6:.1f} MB gzipped")


def fill_skeleton(skel: Path, dst: Path, seed: int = 0) -> None:
    import gguf

    with gzip.open(skel, "rb") as f:
        raw = f.read()
    if not raw.startswith(_MAGIC):
        sys.exit(f"{skel}: not a skeleton written by this script")
    n = int.from_bytes(raw[len(_MAGIC) : len(_MAGIC) + 8], "little")
    meta = json.loads(raw[len(_MAGIC) + 8 : len(_MAGIC) + 8 + n])
    header = raw[len(_MAGIC) + 8 + n :]
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    with open(dst, "wb") as out:
        out.write(header)
        for t in sorted(meta["tensors"], key=lambda t: t["offset"]):
            out.write(b"\0" * (meta["data_offset"] + t["offset"] - out.tell()))  # alignment padding
            if t["type"] in _FLOAT:
                dtype = _FLOAT[t["type"]]
                data = (rng.standard_normal(t["bytes"] // np.dtype(dtype).itemsize) * 0.02).astype(dtype)
                out.write(data.tobytes())
                continue
            qtype = gguf.GGMLQuantizationType[t["type"]]
            _, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
            blocks = np.frombuffer(rng.bytes(t["bytes"]), dtype=np.uint8).reshape(-1, block_bytes).copy()
            for off in _F16_FIELDS[t["type"]]:
                scale = rng.uniform(1e-3, 2e-3, len(blocks)).astype(np.float16)
                blocks[:, off : off + 2] = scale.view(np.uint8).reshape(-1, 2)
            out.write(blocks.tobytes())
        out.write(b"\0" * (meta["size"] - out.tell()))
    size = dst.stat().st_size
    if size != meta["size"]:
        sys.exit(f"{dst}: wrote {size} B, the real file has {meta['size']}")
    gguf.GGUFReader(str(dst))  # parses, tensor table intact
    dt = time.perf_counter() - t0
    print(f"{dst}: random-weight copy of {meta['source']}, {size / 1e6:.1f} MB, in {dt:.1f} s")


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
    k = sub.add_parser("skeleton", help="header + tensor table of a real GGUF, no tensor data")
    k.add_argument("src", type=Path)
    k.add_argument("dst", type=Path)
    fl = sub.add_parser("fill", help="a random-weight GGUF from a skeleton, same header and size")
    fl.add_argument("skeleton", type=Path)
    fl.add_argument("dst", type=Path)
    fl.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.cmd == "tokenizer":
        dump_tokenizer(a.src, a.dst)
    elif a.cmd == "skeleton":
        write_skeleton(a.src, a.dst)
    elif a.cmd == "fill":
        fill_skeleton(a.skeleton, a.dst, a.seed)
    else:
        write_model(a.shape, a.tokenizer, a.dst, a.seed)


if __name__ == "__main__":
    main()
