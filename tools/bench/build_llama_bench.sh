#!/usr/bin/env bash
# Build llama.cpp's llama-bench, the peer that `compare.py` measures beside `tern bench`.
#
# GitHub is not reachable from this project's machines, but PyPI is: the source distribution
# of llama-cpp-python vendors the whole llama.cpp tree (ggml, llama-bench), so this fetches a
# pinned sdist, checks its SHA-256, and builds only the `llama-bench` target with the CPU's
# native instruction set (AVX2 here), as a user building llama.cpp would.
#
#   tools/bench/build_llama_bench.sh [DIR]     # default DIR: ../peers (beside the checkout)
#
# Prints the path of the llama-bench binary on its last line. Needs curl, a C/C++ compiler and
# CMake >= 3.14 (`pip install cmake` provides one). Takes about 10 minutes on 2 cores.
set -euo pipefail

# llama-cpp-python 0.3.36 vendors ggml-org/llama.cpp@0c1e57098 (its CHANGELOG).
VERSION=0.3.36
URL="https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-${VERSION}.tar.gz"
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${1:-$root/../peers}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
tarball="$dir/llama_cpp_python-${VERSION}.tar.gz"
src="$dir/llama_cpp_python-${VERSION}/vendor/llama.cpp"

command -v cmake >/dev/null || { echo "FATAL: cmake not found (pip install cmake)" >&2; exit 1; }

if [ ! -f "$tarball" ] || ! echo "$SHA256  $tarball" | sha256sum -c --quiet 2>/dev/null; then
  echo "fetching llama-cpp-python $VERSION (llama.cpp@0c1e57098) from PyPI" >&2
  curl -fsSL -o "$tarball.tmp" "$URL"
  echo "$SHA256  $tarball.tmp" | sha256sum -c --quiet || { echo "FATAL: SHA-256 mismatch for $URL" >&2; exit 1; }
  mv "$tarball.tmp" "$tarball"
fi
[ -d "$src" ] || tar -xzf "$tarball" -C "$dir"

cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >&2
cmake --build "$src/build" --target llama-bench -j "$(nproc)" >&2
bin="$src/build/bin/llama-bench"
[ -x "$bin" ] || { echo "FATAL: $bin was not built" >&2; exit 1; }
echo "$bin"
