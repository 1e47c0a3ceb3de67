"""Catalogs of hardware, models and quantizations, every number with a source.

    from waveidp import catalog
    catalog.hardware("h100-sxm").memory_bandwidth_bytes_per_s   # 3.35e12
    catalog.model("llama-3.1-8b").kv_heads                      # 8
    catalog.quant("Q4_K_M").bits_per_weight                     # 4.89 (ids are case-insensitive)
    catalog.model("path/to/config.json"), catalog.model("model.gguf")

Built-in entries live in `data/{hardware,models,quants}.yaml` in datasheet units; the loaders
convert to base units (bytes, bytes/s, FLOP/s, watts). Misses raise NotFoundError with the closest
ids; malformed files raise ConfigError with `file:line` and the field.
"""

from waveidp.catalog._gguf_header import model_from_gguf
from waveidp.catalog._hf_config import model_from_hf_config
from waveidp.catalog._models import GENERIC_CPU, GENERIC_GPU, DeviceKind, Dtype, Hardware, ModelSpec, Quant
from waveidp.catalog._registry import all_hardware, all_models, all_quants, hardware, model, quant
from waveidp.catalog.services import Service, service, services

__all__ = [
    "GENERIC_CPU",
    "GENERIC_GPU",
    "DeviceKind",
    "Dtype",
    "Hardware",
    "ModelSpec",
    "Quant",
    "Service",
    "all_hardware",
    "all_models",
    "all_quants",
    "hardware",
    "model",
    "model_from_gguf",
    "model_from_hf_config",
    "quant",
    "service",
    "services",
]
