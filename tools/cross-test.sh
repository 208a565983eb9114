#!/usr/bin/env bash
# The aarch64 tests under qemu-user, once per emulated CPU: neoverse-n1 (NEON + dotprod) and
# cortex-a72 (plain NEON). Emulation proves correctness, never speed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
for cpu_level in neoverse-n1:neon-dotprod cortex-a72:neon; do
  cpu=${cpu_level%%:*}
  level=${cpu_level#*:}
  echo "--> QEMU_CPU=$cpu (expects kernels: $level)" >&2
  QEMU_CPU=$cpu NIB_EXPECT_LEVEL=$level cargo test --release --target aarch64-unknown-linux-gnu -p nib-simd
done
