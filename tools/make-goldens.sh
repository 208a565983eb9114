#!/usr/bin/env bash
# Regenerate the goldens under tests/golden/ with llama.cpp (the reference build that
# shared/tools/llama-cpp-reference.sh makes in ${NIB_REFERENCE:-~/.cache/nib-reference}:
# llama.cpp as llama-cpp-python 0.3.36 vendors it, x86 CPU backend, 2 threads).
#   tools/make-goldens.sh [extra|public|pretok|chat|logits|long|synth|decode|ppl|kernels|all]
#   (default: extra; several may be given)
# Tokenizer goldens:
# extra:  tests/golden/extra_tok.txt  -> tests/golden/MODEL.extra.tok.json   (nib's own hard cases;
#         made with tools/reftok.cpp, which adds llama_detokenize results to refdump's fields)
# public: tests/golden/tok_public.txt -> tests/golden/MODEL.tok.json
# chat:   tests/golden/chat_smollm2.txt, chat_gemma3.txt -> tests/golden/MODEL.chat.tok.json
#         (conversations rendered with each model's chat template; tests/chat.rs checks that nib
#         renders them byte for byte and tokenizes them as llama.cpp does)
# pretok: both texts -> tests/golden/SmolLM2-135M-Instruct.Q4_1.pre-PRE.tok.json: SmolLM2's vocabulary
#         and merges with tokenizer.ggml.pre overridden, one file per pre-tokenizer nib implements,
#         and gemma-3-270m-q4_k_m.space-prefix.tok.json: Gemma's with add_space_prefix on
#         (tools/reftok.cpp, built here, loads only the vocabulary, with the override).
# Forward-pass goldens (tests/logits.rs, tests/decode.rs, tests/perplexity.rs):
# logits: tests/golden/prompts_public.txt -> MODEL.logits.json (`refdump MODEL logits FILE 32`: the
#         prompt as one batch, top-40 logits at every position to 6 digits, 32 greedy tokens) for
#         SmolLM2 Q4_1, gemma-3 and the Q4_0 / Q8_0 copies `llama-quantize --allow-requantize` makes
#         of SmolLM2 (their sha256 must be the ones tests/logits.rs checks for `nib quantize`'s).
# long:   tests/golden/long_prompt.txt -> gemma-3-270m-q4_k_m.long.logits.json (1,524 tokens: three
#         ubatches, the sliding window; 16 greedy tokens).
# synth:  synth-qwen2-tiny-q8_0.logits.json, synth-qwen3-tiny-q8_0.logits.json: `nib synth` (built
#         here) writes the tiny models from seed 1 with SmolLM2's vocabulary (sha256 checked
#         against tests/logits.rs), then `refdump logits` on prompts_public.txt.
# decode: MODEL.decode.json for the four models above (`refdump MODEL decode prompts_public.txt 16`:
#         one token per llama_decode, top-40 after every step to 9 digits, i.e. the exact f32).
# ppl:    SmolLM2-135M-Instruct.Q4_1.ppl.json: what `llama-perplexity -c 512 -b 512 -t 2` prints on
#         tests/golden/ppl_text.txt (the running value after each chunk, the final estimate and ±).
# kernels: tests/golden/kernels/*.bin came from a scratch harness linked against libggml-cpu whose
#         source was not kept (tests/golden/kernels/README.md describes the records); they cannot be
#         remade from this script, which says so and stops ("all" leaves them alone).
# Inputs hold texts separated by a line holding only the byte 0x1E; extra_tok.txt has invalid UTF-8 on
# purpose. refdump writes text fields byte-wise (an invalid byte becomes U+FFFD, but an overlong form
# or a surrogate passes through raw); such leftovers are replaced by U+FFFD here so the JSON is UTF-8.
# Models come from ${NIB_MODELS:-models/} (tools/fetch-models.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models=${NIB_MODELS:-$root/models}
ref=${NIB_REFERENCE:-$HOME/.cache/nib-reference}
bin=$ref/bin
[[ -x $bin/refdump ]] || { echo "error: $bin/refdump not found: run shared/tools/llama-cpp-reference.sh" >&2; exit 1; }
what=" ${*:-extra} "
want() { [[ $what == *" $1 "* || $what == *" all "* ]]; }
golden=$root/tests/golden

# JSON on stdin, made valid UTF-8.
utf8() {
  python3 -c 'import sys; sys.stdout.buffer.write(sys.stdin.buffer.read().decode("utf-8", "replace").encode())'
}

chat_input() { case $1 in SmolLM2*) echo chat_smollm2.txt ;; gemma*) echo chat_gemma3.txt ;; esac; }

save() { # FILE: check FILE.tmp parses, then move it to FILE
  python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$1.tmp"
  mv "$1.tmp" "$1"
  echo "wrote $1" >&2
}

need_model() {
  [[ -f $models/$1.gguf ]] || { echo "error: $models/$1.gguf not found: run tools/fetch-models.sh" >&2; exit 1; }
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
reftok=$tmp/reftok
g++ -O2 -std=c++17 -I"$ref/src/include" -I"$ref/src/ggml/include" "$root/tools/reftok.cpp" -o "$reftok" \
  -L"$bin" -lllama -lggml -lggml-base -Wl,-rpath,"$bin"

for m in SmolLM2-135M-Instruct.Q4_1 gemma-3-270m-q4_k_m; do
  if want public; then
    need_model "$m"
    "$bin/refdump" "$models/$m.gguf" tok "$golden/tok_public.txt" | utf8 >"$golden/$m.tok.json.tmp"
    save "$golden/$m.tok.json"
  fi
  if want extra; then
    need_model "$m"
    "$reftok" "$models/$m.gguf" "$golden/extra_tok.txt" | utf8 >"$golden/$m.extra.tok.json.tmp"
    save "$golden/$m.extra.tok.json"
  fi
  if want chat; then
    need_model "$m"
    "$bin/refdump" "$models/$m.gguf" tok "$golden/$(chat_input "$m")" | utf8 >"$golden/$m.chat.tok.json.tmp"
    save "$golden/$m.chat.tok.json"
  fi
done

if want pretok; then
  m=SmolLM2-135M-Instruct.Q4_1
  need_model $m
  { cat "$golden/tok_public.txt"; printf '\n\x1e\n'; cat "$golden/extra_tok.txt"; } >"$tmp/texts.txt"
  for pre in gpt-2 default llama-bpe qwen2 starcoder falcon deepseek-llm deepseek-coder; do
    out=$golden/$m.pre-$pre.tok.json
    "$reftok" "$models/$m.gguf" "$tmp/texts.txt" "tokenizer.ggml.pre=str:$pre" | utf8 >"$out.tmp"
    save "$out"
  done
  # SentencePiece with a space prefix (as LLaMA 2 and Mistral have), on Gemma's vocabulary.
  m=gemma-3-270m-q4_k_m
  need_model $m
  out=$golden/$m.space-prefix.tok.json
  "$reftok" "$models/$m.gguf" "$tmp/texts.txt" tokenizer.ggml.add_space_prefix=bool:true | utf8 >"$out.tmp"
  save "$out"
fi

# The Q4_0 / Q8_0 copies of SmolLM2 the Q4_0/Q8_0 goldens were made from (llama-quantize; the same
# bytes as `nib quantize`'s, which tests/logits.rs checks by these sha256 sums).
requant() { # TYPE -> path of the copy
  local ty=$1 out=$tmp/smollm2-135m-$1.gguf sum
  if [[ ! -f $out ]]; then
    "$bin/llama-quantize" --allow-requantize "$models/SmolLM2-135M-Instruct.Q4_1.gguf" "$out" "$ty" >/dev/null 2>&1
    sum=$(sha256sum "$out" | cut -d' ' -f1)
    case $ty in
      Q4_0) [[ $sum == aa4256f3b46eb4add75ece1c0eeac1c6e4f1ec0c93e6fbe64fe1770f4ad09ae8 ]] ;;
      Q8_0) [[ $sum == 7b46609d11703c058397e5cfe4cc6e4b2508cb1eb4c80ddc472a5d421fbdb508 ]] ;;
    esac || { echo "error: llama-quantize $ty wrote sha256 $sum, not the goldens' file" >&2; exit 1; }
  fi
  echo "$out"
}

# MODEL-NAME PATH MODE INPUT N: refdump's JSON into tests/golden/MODEL-NAME.SUFFIX.json
refdump_to() {
  local out=$1 path=$2 mode=$3 input=$4 n=$5
  "$bin/refdump" "$path" "$mode" "$golden/$input" "$n" | utf8 >"$out.tmp"
  save "$out"
}

if want logits; then
  for m in SmolLM2-135M-Instruct.Q4_1 gemma-3-270m-q4_k_m; do
    need_model $m
    refdump_to "$golden/$m.logits.json" "$models/$m.gguf" logits prompts_public.txt 32
  done
  need_model SmolLM2-135M-Instruct.Q4_1
  for ty in Q4_0 Q8_0; do
    refdump_to "$golden/smollm2-135m-$ty.logits.json" "$(requant $ty)" logits prompts_public.txt 32
  done
fi

if want long; then
  m=gemma-3-270m-q4_k_m
  need_model $m
  refdump_to "$golden/$m.long.logits.json" "$models/$m.gguf" logits long_prompt.txt 16
fi

if want synth; then
  need_model SmolLM2-135M-Instruct.Q4_1
  (cd "$root" && cargo build --release --quiet --bin nib)
  for arch_sum in qwen2:816fbce2b293c8ed9a6216aa770924a66df7f17aaf471846956bf663803bc07c \
                  qwen3:22a589d17b0088d0c242d919ffd2a31535934a77f7b42e9eb502c7ce0877047b; do
    arch=${arch_sum%%:*}
    path=$tmp/synth-$arch-tiny-q8_0.gguf
    "$root/target/release/nib" synth --arch "$arch" --shape tiny --type q8_0 --seed 1 --ctx 4096 \
      --sliding-window 64 --vocab-from "$models/SmolLM2-135M-Instruct.Q4_1.gguf" -o "$path" >&2
    sum=$(sha256sum "$path" | cut -d' ' -f1)
    [[ $sum == "${arch_sum#*:}" ]] || { echo "error: nib synth $arch wrote sha256 $sum, not the golden's model" >&2; exit 1; }
    refdump_to "$golden/synth-$arch-tiny-q8_0.logits.json" "$path" logits prompts_public.txt 32
  done
fi

if want decode; then
  for m in SmolLM2-135M-Instruct.Q4_1 gemma-3-270m-q4_k_m; do
    need_model $m
    refdump_to "$golden/$m.decode.json" "$models/$m.gguf" decode prompts_public.txt 16
  done
  for ty in Q4_0 Q8_0; do
    refdump_to "$golden/smollm2-135m-$ty.decode.json" "$(requant $ty)" decode prompts_public.txt 16
  done
fi

if want ppl; then
  m=SmolLM2-135M-Instruct.Q4_1
  need_model $m
  # -b 512: one chunk per batch, as nib evaluates them (with the default -b 2048, llama-perplexity
  # packs four chunks into one batch as four sequences over a 2048-cell cache).
  "$bin/llama-perplexity" -m "$models/$m.gguf" -f "$golden/ppl_text.txt" -c 512 -b 512 -t 2 >"$tmp/ppl.txt" 2>&1 ||
    { cat "$tmp/ppl.txt" >&2; exit 1; }
  python3 - "$tmp/ppl.txt" "$m.gguf" >"$golden/$m.ppl.json.tmp" <<'PY'
import json, re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
chunks = re.findall(r"\[(\d+)\]([0-9.]+|nan|inf)", text)
assert [int(n) for n, _ in chunks] == list(range(1, len(chunks) + 1)), chunks
final = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", text)
print(json.dumps({
    "model": sys.argv[2],
    "command": "llama-perplexity -m MODEL -f tests/golden/ppl_text.txt -c 512 -b 512 -t 2",
    "n_ctx": 512,
    "chunks": [v for _, v in chunks],
    "final": final.group(1),
    "error": final.group(2),
}, indent=1))
PY
  save "$golden/$m.ppl.json"
fi

if [[ $what == *" kernels "* ]]; then # not part of "all"
  echo "error: tests/golden/kernels/*.bin were written once by a scratch harness linked against" \
    "libggml-cpu whose source was not kept; see tests/golden/kernels/README.md for the records" >&2
  exit 1
fi
