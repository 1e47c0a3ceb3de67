#!/usr/bin/env bash
# One llama-server, several `wave bench` runs against it directly, each with its own prompt length,
# concurrencies and arrival pattern. Results under RESULTS/<label>/<name>/results.json.
#
#   benchmarks/investigations/gpu/points.sh LABEL MODEL.gguf CATALOG_ID QUANT DEVICE BUDGET_S SPEC...
#
# SPEC = name:input_tokens:concurrencies:ramp_s:point_warmup:requests:duration_s, e.g.
#   burst512:512:8,32:0:0:128:12      all c clients start together (wave bench's default)
#   steady16:512:16:5:16:48:14        starts spread over one request's duration (ramp), the first
#                                     round excluded (point warmup): a closed loop in steady state
# env: BIN, RESULTS, WAVE, NP (64), MAXIN (longest prompt, sizes -c), OUTTOK (128),
#      SERVER_EXTRA (more llama-server options, e.g. "--cache-ram 0").
set -uo pipefail
source "$(dirname "$0")/llama_up.sh"
label=$1 model=$2 catalog=$3 quant=$4 device=$5 budget=$6
shift 6
BIN=${BIN:?dir with llama-server}
RESULTS=${RESULTS:?results dir}
WAVE=${WAVE:-wave}
OUTTOK=${OUTTOK:-128}
np=${NP:-64}
maxin=${MAXIN:-512}
ctx=$((np * (maxin * 5 / 4 + OUTTOK + 128)))
t0=$(date +%s)
left() { echo $((budget - ($(date +%s) - t0))); }
dir=$RESULTS/$label
mkdir -p "$dir"
cmdlog=$dir/commands.txt

port=$((20000 + RANDOM % 10000))
server=("$BIN/llama-server" -m "$model" --alias "$catalog" --host 127.0.0.1 --port "$port"
  -ngl 99 -np "$np" -c "$ctx" -fa on --metrics --no-webui ${SERVER_EXTRA:-})
trap 'kill ${spid:-} 2>/dev/null; wait 2>/dev/null' EXIT
start_llama "$dir/llama-server.log"
echo "[$label] llama-server up after $(($(date +%s) - t0)) s"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >"$dir/gpu-memory-idle.csv"

for spec in "$@"; do
  IFS=: read -r name in conc ramp pw nreq dur <<<"$spec"
  need=$((dur + 25))
  [ "$(left)" -gt "$need" ] || { echo "[$label] skip $name: $(left) s left, needs ~$need"; continue; }
  b=("$WAVE" bench --url "http://127.0.0.1:$port" -m "$catalog" -c "$conc" -n "$nreq" --duration "$dur"
    --grace 20 --input-tokens "$in" --output-tokens "$OUTTOK" --ignore-eos --warmup 2 --timeout 120
    --ramp "$ramp" --point-warmup "$pw" --predict --model-id "$catalog" --quant "$quant" --device "$device"
    --engine llamacpp --parallel "$np" --no-chunks --no-plots --out "$dir/$name")
  echo "${b[*]}" >>"$cmdlog"
  echo "== [$label] $name (in $in, c $conc, ramp $ramp, point warmup $pw), $(left) s left"
  timeout $(($(left) - 5)) "${b[@]}" 2>&1 | grep -vE "^\s*$" | tail -14
done
