#!/usr/bin/env bash
# Regenerate tokenizer goldens with llama.cpp's refdump (built by shared/tools/llama-cpp-reference.sh
# into ${NIB_REFERENCE:-~/.cache/nib-reference}/bin).
#   tools/make-goldens.sh [extra|public|chat|all]     (default: extra)
# extra:  tests/golden/extra_tok.txt  -> tests/golden/MODEL.extra.tok.json   (nib's own hard cases)
# public: tests/golden/tok_public.txt -> tests/golden/MODEL.tok.json
# chat:   tests/golden/chat_smollm2.txt, chat_gemma3.txt -> tests/golden/MODEL.chat.tok.json
#         (conversations rendered with each model's chat template; tests/chat.rs checks that nib
#         renders them byte for byte and tokenizes them as llama.cpp does)
# Inputs hold texts separated by a line holding only the byte 0x1E; extra_tok.txt has invalid UTF-8 on
# purpose. refdump writes text fields byte-wise (an invalid byte becomes U+FFFD, but an overlong form
# or a surrogate passes through raw); such leftovers are replaced by U+FFFD here so the JSON is UTF-8.
# Models come from ${NIB_MODELS:-models/} (tools/fetch-models.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models=${NIB_MODELS:-$root/models}
bin=${NIB_REFERENCE:-$HOME/.cache/nib-reference}/bin
refdump=$bin/refdump
[[ -x $refdump ]] || { echo "error: $refdump not found: run shared/tools/llama-cpp-reference.sh" >&2; exit 1; }
what=${1:-extra}
golden=$root/tests/golden

run() { # model input output
  local model=$models/$1.gguf
  [[ -f $model ]] || { echo "error: $model not found: run tools/fetch-models.sh" >&2; exit 1; }
  "$refdump" "$model" tok "$2" | python3 -c '
import sys
raw = sys.stdin.buffer.read()
sys.stdout.buffer.write(raw.decode("utf-8", "replace").encode("utf-8"))
' >"$3.tmp"
  python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$3.tmp"
  mv "$3.tmp" "$3"
  echo "wrote $3" >&2
}

chat_input() { case $1 in SmolLM2*) echo chat_smollm2.txt ;; gemma*) echo chat_gemma3.txt ;; esac; }

for m in SmolLM2-135M-Instruct.Q4_1 gemma-3-270m-q4_k_m; do
  if [[ $what == extra || $what == all ]]; then run "$m" "$golden/extra_tok.txt" "$golden/$m.extra.tok.json"; fi
  if [[ $what == public || $what == all ]]; then run "$m" "$golden/tok_public.txt" "$golden/$m.tok.json"; fi
  if [[ $what == chat || $what == all ]]; then run "$m" "$golden/$(chat_input "$m")" "$golden/$m.chat.tok.json"; fi
done
