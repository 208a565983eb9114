#!/usr/bin/env bash
# Side-by-side speed: runs `nib bench` and llama.cpp's `llama-bench` alternately on the same models,
# threads and tests, and prints the ratio nib / llama.cpp per test (for people; not a CI step).
#
#   bench/compare.sh [-m MODEL]... [-p 512] [-n 128] [-t 2] [-r 5] [--rounds 2]
#
# llama-bench comes from $LLAMA_BENCH, else ~/.cache/nib-reference/bin/llama-bench (built by
# ../shared/tools/llama-cpp-reference.sh). The machine should be otherwise idle: both tools use
# every thread they are given, and these machines are noisy, so each tool runs --rounds times,
# alternating, and the best mean of each is compared.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models=() p=512 n=128 t=$(nproc) r=5 rounds=2
while (($#)); do
  case $1 in
    -m) models+=("$2"); shift 2 ;;
    -p) p=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    -t) t=$2; shift 2 ;;
    -r) r=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
((${#models[@]})) || models=("$root/models/SmolLM2-135M-Instruct.Q4_1.gguf")
llama_bench=${LLAMA_BENCH:-$HOME/.cache/nib-reference/bin/llama-bench}
[[ -x $llama_bench ]] || { echo "llama-bench not found at $llama_bench (set LLAMA_BENCH)" >&2; exit 1; }
nib=$root/target/release/nib
(cd "$root" && cargo build --release --bin nib >&2)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for m in "${models[@]}"; do
  for ((i = 0; i < rounds; i++)); do
    "$llama_bench" -m "$m" -p "$p" -n "$n" -t "$t" -r "$r" -o jsonl >>"$tmp/llama.jsonl" 2>/dev/null
    "$nib" bench -m "$m" -p "$p" -n "$n" -t "$t" -r "$r" -o jsonl >>"$tmp/nib.jsonl" 2>/dev/null
  done
done
python3 - "$tmp/llama.jsonl" "$tmp/nib.jsonl" <<'PY'
import json, os, sys
def load(path):
    best = {}
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        test = f"pp{d['n_prompt']}" if d["n_prompt"] else f"tg{d['n_gen']}"
        key = (os.path.basename(d["model_filename"]), d["n_threads"], test)
        if key not in best or d["avg_ts"] > best[key][0]:
            best[key] = (d["avg_ts"], d["stddev_ts"])
    return best
llama, nib = load(sys.argv[1]), load(sys.argv[2])
print(f"| {'model':<36} | {'threads':>7} | {'test':>6} | {'llama.cpp t/s':>14} | {'nib t/s':>14} | {'nib/llama.cpp':>13} |")
print(f"| {'-'*36} | {'-'*6}: | {'-'*5}: | {'-'*13}: | {'-'*13}: | {'-'*12}: |")
for key in sorted(llama):
    if key not in nib:
        continue
    (l, ls), (n, ns) = llama[key], nib[key]
    print(f"| {key[0]:<36} | {key[1]:>7} | {key[2]:>6} | {l:>8.2f} ± {ls:<4.1f}| {n:>8.2f} ± {ns:<4.1f}| {n / l:>12.2f}x |")
PY
