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

# The kernel level this CPU must get, derived from the flags /proc/cpuinfo shows (the features
# nib_simd's detection reads): the x86-64 run asserts that the kernels run at it
# (NIB_EXPECT_LEVEL: simd/tests/kernels.rs for detection, tests/logits.rs for the level the
# model tests use), so a CPU offering a level the tests did not run fails here instead of
# passing silently; then the model tests run again at every SIMD level below it.
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { [[ $flags == *" $1 "* ]]; }
expect=scalar
if has avx2 && has fma && has f16c; then
  expect=avx2
  if has avx512f && has avx512bw && has avx512vl && has avx512_vnni; then
    expect=avx512vnni
  fi
fi
lower=()
[[ $expect == avx512vnni ]] && lower=(avx2)

step "x86-64 tests (release), kernels at $expect"
unset NIB_KERNELS NIB_ORDERS
NIB_EXPECT_LEVEL=$expect cargo test --workspace --release

# Every level reproduces llama.cpp bit for bit (the kernel tests already cover every level
# against the scalar reference; these run the real models through each).
for level in "${lower[@]}"; do
  step "x86-64 logits, decode and perplexity at the $level level"
  NIB_KERNELS=$level NIB_EXPECT_LEVEL=$level cargo test --release --test logits --test decode --test perplexity
done

step "aarch64 tests under qemu"
tools/cross-test.sh
