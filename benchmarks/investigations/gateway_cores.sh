#!/usr/bin/env bash
# benchmarks/gateway_overhead.py on a many-core machine (the device machine), pinned with
# taskset to 2 and then 4 cores: does the c=64 target follow the core arithmetic in
# docs/gateway.md ("Why c=64 still misses on 2 cores")? Everything it needs that the host lacks is
# carried: nginx and wrk with their libraries ($CARRY/cpu, copied from this machine's Debian
# packages) and the wheels of waveidp's dependencies for Python 3.12 less numpy ($CARRY/whl-all:
# pip download --only-binary :all: --python-version 3.12 --platform manylinux2014_x86_64 ...).
# Results: $OUT/gateway_overhead_cores*.json (the host has no numpy for the plot, so its plot step fails
# after the JSON is written).
set -euo pipefail
C=${CARRY:-.device-carry}
OUT=${OUT:-/tmp/out}
V=/tmp/wave-venv
python3 -m venv --system-site-packages $V
$V/bin/pip install -q --no-index --no-deps "$C"/whl-all/*.whl
printf '#!/bin/sh\nexec %s -m waveidp "$@"\n' "$V/bin/python" >$V/bin/wave && chmod +x $V/bin/wave
export PYTHONPATH=$PWD/src LD_LIBRARY_PATH=$PWD/$C/cpu PATH=$PWD/$C/cpu:$PATH
mkdir -p /var/log/nginx
$V/bin/wave serve --help >/dev/null
nproc && nginx -v && wrk --version | head -1 || true
for cores in ${CORES:-0-1 0-3}; do
  echo "== cores $cores"
  timeout "${PER_RUN_S:-240}" taskset -c "$cores" $V/bin/python benchmarks/gateway_overhead.py --quick \
    --no-litellm --workers ${WORKERS:-1 2} --concurrency 1 64 --work-dir "/tmp/go-$cores" \
    --out "$OUT/gateway_overhead_cores$cores.json" || { echo "run on cores $cores failed"; tail -n 5 /tmp/go-$cores/*.log; }
done
