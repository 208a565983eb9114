#!/usr/bin/env bash
# nib's whole test suite, as CI runs it (.ci/run calls this). Installs what it needs if missing:
# the aarch64 target and cross tools, the Python reference reader (gguf==0.19.0, in .venv/),
# and the real models (tools/fetch-models.sh). Then: fmt, clippy, x86-64 tests in release mode,
# and the aarch64 tests under qemu for two CPUs (tools/cross-test.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n==> %s\n' "$*" >&2; }

step "prerequisites"
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
need_apt=()
command -v qemu-aarch64-static >/dev/null || need_apt+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu)
[[ -d /usr/aarch64-linux-gnu/lib ]] || need_apt+=(libc6-dev-arm64-cross)
[[ -x /usr/bin/time ]] || need_apt+=(time)
if ((${#need_apt[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import gguf' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check gguf==0.19.0
fi
export NIB_PYTHON=$root/.venv/bin/python
tools/fetch-models.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --release -- -D warnings

step "x86-64 tests (release)"
cargo test --workspace --release

# The logits tests run at the detected level; where that is AVX-512 VNNI, run them at AVX2 as well
# (both must reproduce llama.cpp bit for bit; the kernel tests already cover every level).
if grep -qw avx512_vnni /proc/cpuinfo 2>/dev/null; then
  step "x86-64 logits at the AVX2 level"
  NIB_KERNELS=avx2 cargo test --release --test logits
fi

step "aarch64 tests under qemu"
tools/cross-test.sh
