#!/usr/bin/env bash
# The aarch64 side of the test suite, under qemu-user, once per emulated CPU: neoverse-n1
# (NEON + dotprod) and cortex-a72 (plain NEON). Emulation proves correctness, never speed.
#  1. the kernel crate's tests (every kernel and tile bit for bit against the scalar reference,
#     llama.cpp's kernel goldens at every level, the level asserted);
#  2. the whole ARM path on SmolLM2: a short `nib bench`, and a greedy `nib run` of 8 tokens
#     which, in llama.cpp's x86 summation orders (NIB_ORDERS=llama), must equal the x86-64 build's;
#     in the levels' own orders (the default, faster on Neoverse-N1) the tokens are printed;
#  3. on neoverse-n1, the SmolLM2 Q4_1 and gemma-3 Q4_K_M logits tests (tests/logits.rs) twice:
#     with NIB_ORDERS=llama, where every logit must equal llama.cpp's x86 golden, and in the
#     default orders, held to the tolerance bar that test states;
#  4. on neoverse-n1, `nib perplexity` on tests/golden/ppl_text.txt against llama-perplexity's x86
#     figures: equal after one chunk in llama.cpp's orders, within 0.1% after four in the default.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
models=${NIB_MODELS:-$root/models}
model=$models/SmolLM2-135M-Instruct.Q4_1.gguf
prompt="The capital of France is"

for cpu_level in neoverse-n1:neon-dotprod cortex-a72:neon; do
  cpu=${cpu_level%%:*}
  level=${cpu_level#*:}
  echo "--> QEMU_CPU=$cpu (expects kernels: $level): nib-simd tests" >&2
  QEMU_CPU=$cpu NIB_EXPECT_LEVEL=$level cargo test --release --target aarch64-unknown-linux-gnu -p nib-simd
done

echo "--> aarch64 nib binary on SmolLM2 under qemu" >&2
cargo build --release --target aarch64-unknown-linux-gnu --bin nib
cargo build --release --bin nib
arm=(qemu-aarch64-static -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/release/nib)
want=$(target/release/nib run -m "$model" -p "$prompt" -n 8 --temp 0 --json -t 2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"])')
echo "x86-64 greedy tokens: $want" >&2
for cpu_level in neoverse-n1:neon-dotprod cortex-a72:neon; do
  cpu=${cpu_level%%:*}
  level=${cpu_level#*:}
  # Capture first: `nib info | grep -q` lets grep exit at the first match and close the pipe, so
  # nib can die of SIGPIPE and, under pipefail, fail the check at random.
  info=$(QEMU_CPU=$cpu "${arm[@]}" info)
  if ! grep -q "kernels: $level" <<<"$info"; then
    echo "error: QEMU_CPU=$cpu did not select $level:" >&2
    echo "$info" >&2
    exit 1
  fi
  QEMU_CPU=$cpu "${arm[@]}" bench -m "$model" -p 16 -n 4 -r 1 -t 2
  got=$(QEMU_CPU=$cpu NIB_ORDERS=llama "${arm[@]}" run -m "$model" -p "$prompt" -n 8 --temp 0 --json -t 2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"])')
  echo "aarch64 ($cpu, llama.cpp's orders) greedy tokens: $got" >&2
  if [[ "$got" != "$want" ]]; then
    echo "error: aarch64 ($cpu) greedy tokens in llama.cpp's orders differ from x86-64's" >&2
    exit 1
  fi
  own=$(QEMU_CPU=$cpu "${arm[@]}" run -m "$model" -p "$prompt" -n 8 --temp 0 --json -t 2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"])')
  echo "aarch64 ($cpu, the level's own orders) greedy tokens: $own" >&2
done

echo "--> QEMU_CPU=neoverse-n1: SmolLM2 and gemma-3 logits against llama.cpp, in both orders" >&2
for orders in llama native; do
  QEMU_CPU=neoverse-n1 NIB_ORDERS=$orders cargo test --release --target aarch64-unknown-linux-gnu \
    --test logits -- --nocapture smollm2_q4_1 gemma3_q4_k_m
done
echo "--> QEMU_CPU=neoverse-n1: nib perplexity against llama-perplexity's x86 figures" >&2
# tests/golden/*.ppl.json: llama-perplexity's running estimate after each 512-token chunk of
# tests/golden/ppl_text.txt. llama.cpp's orders: chunk 1 printed digit for digit; the default
# orders: after 4 chunks, within 0.1%.
ppl_golden=tests/golden/SmolLM2-135M-Instruct.Q4_1.ppl.json
ppl() { # orders chunks -> nib's running estimate after the last chunk
  QEMU_CPU=neoverse-n1 NIB_ORDERS=$1 "${arm[@]}" perplexity -m "$model" -f tests/golden/ppl_text.txt \
    -c 512 -t 2 --chunks "$2" 2>/dev/null | grep -o "\[$2\][0-9.]*" | cut -d] -f2
}
want1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chunks"][0])' "$ppl_golden")
got1=$(ppl llama 1)
echo "perplexity after chunk 1, llama.cpp's orders: nib $got1, llama-perplexity $want1" >&2
if [[ "$got1" != "$want1" ]]; then
  echo "error: aarch64 perplexity in llama.cpp's orders differs from llama-perplexity's" >&2
  exit 1
fi
want4=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chunks"][3])' "$ppl_golden")
got4=$(ppl native 4)
echo "perplexity after chunk 4, the default orders: nib $got4, llama-perplexity $want4" >&2
python3 - "$got4" "$want4" <<'PY'
import sys
got, want = float(sys.argv[1]), float(sys.argv[2])
rel = abs(got - want) / want
print(f"relative difference {rel:.4%} (bar 0.1%)", file=sys.stderr)
sys.exit(0 if rel < 0.001 else 1)
PY
echo "aarch64: kernels, bench, greedy tokens, logits and perplexity OK" >&2
