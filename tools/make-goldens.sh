#!/usr/bin/env bash
# Regenerate tokenizer goldens with llama.cpp (the reference build that
# shared/tools/llama-cpp-reference.sh makes in ${NIB_REFERENCE:-~/.cache/nib-reference}).
#   tools/make-goldens.sh [extra|public|pretok|chat|all]     (default: extra)
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
what=${1:-extra}
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
  if [[ $what == public || $what == all ]]; then
    need_model "$m"
    "$bin/refdump" "$models/$m.gguf" tok "$golden/tok_public.txt" | utf8 >"$golden/$m.tok.json.tmp"
    save "$golden/$m.tok.json"
  fi
  if [[ $what == extra || $what == all ]]; then
    need_model "$m"
    "$reftok" "$models/$m.gguf" "$golden/extra_tok.txt" | utf8 >"$golden/$m.extra.tok.json.tmp"
    save "$golden/$m.extra.tok.json"
  fi
  if [[ $what == chat || $what == all ]]; then
    need_model "$m"
    "$bin/refdump" "$models/$m.gguf" tok "$golden/$(chat_input "$m")" | utf8 >"$golden/$m.chat.tok.json.tmp"
    save "$golden/$m.chat.tok.json"
  fi
done

if [[ $what == pretok || $what == all ]]; then
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
