"""The local model store and a model's lifecycle: pull, import, quantize, measure quality.

from waveidp import models
store = models.ModelStore()                          # WAVE_MODELS_DIR or WAVE_HOME/models
plan = models.plan_pull(store, "hf://bartowski/SmolLM2-135M-Instruct-GGUF:*Q8_0.gguf")
model, fetched = models.pull(store, plan)             # resumable, sha256-checked
models.quantize(store, model.name, "Q4_K_M")          # the real llama-quantize
store.get("smollm2-135m-instruct-q4_k_m").manifest    # files, sha256, architecture, quality
"""

from waveidp.catalog.store_manifest import Manifest, QualityResult, Source, StoredFile
from waveidp.models._hub import ChecksumError, HubError, PullPlan, PullProgress, parse_uri, plan_pull, pull
from waveidp.models._importing import import_path
from waveidp.models._quality import QualityError, Settings, base_logits, check_comparable, measure
from waveidp.models._quantize import QuantizeError, parse_types, quantize
from waveidp.models._store import ModelStore, NoSpaceError, StoredModel, sha256_file, store_root
from waveidp.models.packaged import GEMMA_STORE_NAME, gemma_model_path

__all__ = [
    "GEMMA_STORE_NAME",
    "ChecksumError",
    "HubError",
    "Manifest",
    "ModelStore",
    "NoSpaceError",
    "PullPlan",
    "PullProgress",
    "QualityError",
    "QualityResult",
    "QuantizeError",
    "Settings",
    "Source",
    "StoredFile",
    "StoredModel",
    "base_logits",
    "check_comparable",
    "gemma_model_path",
    "import_path",
    "measure",
    "parse_types",
    "parse_uri",
    "plan_pull",
    "pull",
    "quantize",
    "sha256_file",
    "store_root",
]
