"""Write a random-weight Llama-3.1-8B checkpoint (bf16 safetensors + tokenizer) for `transformers serve`.

Speed does not depend on weight values, so the model is built from the real config with random
weights on the GPU (no download). The tokenizer is SmolLM2's byte-level BPE (carried as
smollm2-tokenizer.json.gz, see make_random_gguf.py) padded with plain tokens to the 128,256-entry
vocabulary, with SmolLM2's chat template, so prompts tokenize like real text and every sampled id
decodes. EOS is left out of the generation config: lengths are set by max_tokens alone
(`transformers serve` refuses wave bench's ignore_eos/min_tokens fields).

    python transformers_model.py smollm2-tokenizer.json.gz /tmp/llama8b-random
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Any

import torch

VOCAB = 128256
# Llama-3.1-8B's shape (its config.json), for every random-weight transformers model here.
LLAMA_31_8B: dict[str, Any] = {
    "vocab_size": VOCAB,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}


def tokenizer(src: Path) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    with gzip.open(src, "rt") as f:
        tok = json.load(f)
    tokens = list(tok["tokens"]) + [f"xpad{i}" for i in range(VOCAB - len(tok["tokens"]))]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in tok["merges"]]
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=tokens[int(tok["bos"])],
        eos_token=tokens[int(tok["eos"])],
        pad_token=tokens[int(tok["eos"])],
        chat_template=tok.get("chat_template"),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tokenizer", type=Path)
    p.add_argument("out", type=Path)
    a = p.parse_args()
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    t0 = time.perf_counter()
    cfg = LlamaConfig(**LLAMA_31_8B, torch_dtype="bfloat16")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.generation_config = GenerationConfig(do_sample=False, eos_token_id=None, pad_token_id=0)
    model.save_pretrained(a.out)
    tokenizer(a.tokenizer).save_pretrained(a.out)  # type: ignore[attr-defined]
    size = sum(f.stat().st_size for f in a.out.iterdir())
    print(
        f"{a.out}: random-weight Llama-3.1-8B bf16, {size / 1e9:.1f} GB in {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
