#!/usr/bin/env bash
# transformers' own OpenAI-compatible server (`transformers serve --continuous-batching`) on a
# random-weight Llama-3.1-8B in bf16, swept with `wave bench` directly. Results under
# RESULTS/transformers-serve/. Needs the openai wheel set (.device-carry/whl-tf: transformers'
# "serving" extra) on PYTHONPATH.
#
#   benchmarks/investigations/gpu/transformers_serve.sh TOKENIZER.json.gz DEVICE BUDGET_S
# env: RESULTS, WAVE, CONC (1,4,16), OUTTOK (64), IN (512)
set -uo pipefail
tok=$1 device=$2 budget=$3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
t0=$(date +%s)
left() { echo $((budget - ($(date +%s) - t0))); }
dir=$RESULTS/transformers-serve
mkdir -p "$dir"
cmdlog=$dir/commands.txt
model=/tmp/llama8b-random
python3 -c "import transformers, openai, fastapi, uvicorn; from transformers.cli.serving.server import build_server; print('transformers', transformers.__version__, 'openai', openai.__version__, 'fastapi', fastapi.__version__)" || exit 1
m=(python3 benchmarks/investigations/gpu/transformers_model.py "$tok" "$model")
echo "${m[*]}" >>"$cmdlog"
[ -f $model/config.json ] || "${m[@]}" || exit 1
port=$((30000 + RANDOM % 10000))
s=(python3 -m transformers.cli.transformers serve "$model" --continuous-batching --host 127.0.0.1 --port "$port" --log-level info)
echo "${s[*]}" >>"$cmdlog"
"${s[@]}" >"$dir/transformers-serve.log" 2>&1 &
spid=$!
trap 'kill $spid 2>/dev/null; wait 2>/dev/null' EXIT
# /v1/models answers 500 offline (it scans the Hugging Face cache), so poll with a real request
probe="{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1}"
for _ in $(seq 900); do
  curl -sf "127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' -d "$probe" \
    >/dev/null && break
  kill -0 $spid 2>/dev/null || { echo "transformers serve died"; tail -30 "$dir/transformers-serve.log"; exit 1; }
  sleep 0.2
done
echo "transformers serve up after $(($(date +%s) - t0)) s"
curl -s "127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
  -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":8}" \
  | head -c 600 | tee "$dir/probe.json"; echo
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >"$dir/gpu-memory-idle.csv"
b=("$WAVE" bench --url "http://127.0.0.1:$port" -m "$model" -c "${CONC:-1,4,16}" -n 48 --duration 20
  --grace 30 --input-tokens "${IN:-512}" --output-tokens "${OUTTOK:-64}" --no-ignore-eos --warmup 2
  --timeout 120 --predict --model-id llama-3.1-8b --quant bf16 --device "$device" --engine transformers
  --no-chunks --no-plots --out "$dir/direct")
echo "${b[*]}" >>"$cmdlog"
timeout $(($(left) - 5)) "${b[@]}" 2>&1 | grep -vE "^\s*$" | tail -16
tail -5 "$dir/transformers-serve.log"
