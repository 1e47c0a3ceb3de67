#!/usr/bin/env bash
# One model on llama-server: `wave bench` concurrency sweep directly against the engine, then the
# same sweep through `wave serve` in front of it. Results under RESULTS/<label>/{direct,gateway}.
#
#   benchmarks/investigations/gpu/sweep.sh LABEL MODEL.gguf CATALOG_ID QUANT DEVICE BUDGET_S [direct|both]
#
# env: BIN (llama tools dir), RESULTS, CONC (1,4,16,64), IN/OUTTOK (512/128), NREQ, DUR, WAVE,
#      BENCH_EXTRA (more wave bench options, e.g. "--ramp 2 --point-warmup 32"), GAP=1 (ttft_gap.py).
set -uo pipefail
source "$(dirname "$0")/llama_up.sh"
label=$1 model=$2 catalog=$3 quant=$4 device=$5 budget=$6 mode=${7:-both}
BIN=${BIN:?dir with llama-server}
RESULTS=${RESULTS:?results dir}
CONC=${CONC:-1,4,16,64}
IN=${IN:-512}
OUTTOK=${OUTTOK:-128}
NREQ=${NREQ:-128}
DUR=${DUR:-15}
WAVE=${WAVE:-wave}
np=${NP:-64}
ctx=$((np * (IN + OUTTOK + 128)))
t0=$(date +%s)
left() { echo $((budget - ($(date +%s) - t0))); }
mkdir -p "$RESULTS/$label"
cmdlog="$RESULTS/$label/commands.txt"

port=$((20000 + RANDOM % 10000))
gport=$((port + 1))
server=("$BIN/llama-server" -m "$model" --alias "$catalog" --host 127.0.0.1 --port "$port"
  -ngl 99 -np "$np" -c "$ctx" -fa on --metrics --no-webui)
gpid=
trap 'kill ${spid:-} $gpid 2>/dev/null; wait 2>/dev/null' EXIT
start_llama "$RESULTS/$label/llama-server.log"
echo "[$label] llama-server up after $(($(date +%s) - t0)) s; $(nvidia-smi --query-gpu=memory.used --format=csv,noheader)"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >"$RESULTS/$label/gpu-memory-idle.csv"

bench() {  # target-url outdir
  local b=("$WAVE" bench --url "$1" -m "$catalog" -c "$CONC" -n "$NREQ" --duration "$DUR" --grace 20
    --input-tokens "$IN" --output-tokens "$OUTTOK" --ignore-eos --warmup 2 --timeout 120
    --predict --model-id "$catalog" --quant "$quant" --device "$device" --engine llamacpp
    --parallel "$np" --no-chunks --out "$2" ${BENCH_EXTRA:-})
  echo "${b[*]}" >>"$cmdlog"
  timeout $(($(left) - 5)) "${b[@]}" 2>&1 | grep -vE "^\s*$" | tail -25
}

gap() {  # target-url name
  [ -n "${GAP:-}" ] || return 0
  local g=(python3 benchmarks/investigations/gpu/ttft_gap.py "$1" "$catalog" --n 10 --words $((IN * 3 / 4)) --out "$RESULTS/$label/ttft-gap-$2.json")
  echo "${g[*]}" >>"$cmdlog"
  timeout 60 "${g[@]}" | tail -1
}
gap "http://127.0.0.1:$port" direct
bench "http://127.0.0.1:$port" "$RESULTS/$label/direct"
[ "$mode" = both ] || exit 0
[ "$(left)" -gt 40 ] || { echo "[$label] no time left for the gateway sweep"; exit 0; }

g=("$WAVE" serve --upstream "http://127.0.0.1:$port" --engine llamacpp --no-auth --host 127.0.0.1
  --port "$gport")
echo "${g[*]}" >>"$cmdlog"
"${g[@]}" >"$RESULTS/$label/wave-serve.log" 2>&1 &
gpid=$!
for _ in $(seq 300); do
  curl -sf "127.0.0.1:$gport/v1/models" >/dev/null && break
  kill -0 $gpid 2>/dev/null || { echo "wave serve died"; tail -20 "$RESULTS/$label/wave-serve.log"; exit 1; }
  sleep 0.2
done
gap "http://127.0.0.1:$gport" gateway
bench "http://127.0.0.1:$gport" "$RESULTS/$label/gateway"
