#!/usr/bin/env bash
# Check `nib serve` the way its users meet it: the official OpenAI Python client (chat,
# completion, streaming, errors) and curl, against a real server on a free loopback port.
#
#   tools/serve-check.sh [NIB SERVE OPTIONS...]      e.g. tools/serve-check.sh -m model.gguf -t 2
#
# Creates .venv-serve/ with `openai` (pip) the first time; builds target/release/nib if missing
# (or uses $NIB). Ends with "N passed, M failed" and exits non-zero on a failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

nib=${NIB:-$root/target/release/nib}
if [[ ! -x $nib ]]; then
  cargo build --release --bin nib
fi
venv=${SERVE_CHECK_VENV:-$root/.venv-serve}
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import openai' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check openai
fi
"$venv/bin/python" -c 'import openai; print("openai", openai.__version__)'

key="check-$$-$RANDOM"
log=$(mktemp)
"$nib" serve --port 0 --api-key "$key" -c 1024 "$@" 2>"$log" &
pid=$!
cleanup() {
  if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -f "$log"
}
trap cleanup EXIT

port=
for _ in $(seq 100); do
  port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$log" | head -1)
  [[ -n $port ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $port ]] || { echo "nib serve printed no address" >&2; cat "$log" >&2; exit 1; }
base="http://127.0.0.1:$port"
for _ in $(seq 600); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' "$base/health") == 200 ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
echo "server: $base ($(grep -m1 'loaded' "$log" | sed 's/^nib serve: //'))"

passed=0
failed=0
check() { # NAME EXPECTED ACTUAL
  if [[ $2 == "$3" ]]; then
    echo "ok   $1"; passed=$((passed + 1))
  else
    echo "FAIL $1: expected $2, got $3"; failed=$((failed + 1))
  fi
}
auth=(-H "Authorization: Bearer $key")
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

echo "--- curl"
check "curl /health" 200 "$(code "$base/health")"
check "curl /v1/models without a key is 401" 401 "$(code "$base/v1/models")"
check "curl /v1/models" 200 "$(code "${auth[@]}" "$base/v1/models")"
check "curl chat" 200 "$(code "${auth[@]}" "$base/v1/chat/completions" \
  -d '{"messages":[{"role":"user","content":"Say hi"}],"max_tokens":8}')"
out=$(curl -sN "${auth[@]}" "$base/v1/completions" -d '{"prompt":"The sky is","max_tokens":8,"stream":true}')
check "curl streamed completion ends with [DONE]" "data: [DONE]" "$(printf '%s\n' "$out" | grep -v '^$' | tail -1)"
check "curl malformed JSON is 400" 400 "$(code "${auth[@]}" "$base/v1/completions" -d '{"prompt":')"
check "curl /metrics" 200 "$(code "${auth[@]}" "$base/metrics")"

echo "--- openai $("$venv/bin/python" -c 'import openai; print(openai.__version__)')"
set +e
NIB_BASE="$base/v1" NIB_KEY="$key" "$venv/bin/python" - <<'PY'
import os, sys
import openai

client = openai.OpenAI(base_url=os.environ["NIB_BASE"], api_key=os.environ["NIB_KEY"], max_retries=0, timeout=120)
results = []

def check(name, fn):
    try:
        detail = fn()
        print(f"ok   {name}: {detail}")
        results.append(True)
    except Exception as e:  # noqa: BLE001 - report anything
        print(f"FAIL {name}: {type(e).__name__}: {e}")
        results.append(False)

def models():
    ids = [m.id for m in client.models.list().data]
    assert len(ids) == 1, ids
    return ids[0]

def chat():
    r = client.chat.completions.create(model="nib", messages=[{"role": "user", "content": "What is 2+2?"}],
                                       max_tokens=12, temperature=0)
    c = r.choices[0]
    assert c.message.role == "assistant" and c.message.content, r
    assert c.finish_reason in ("stop", "length"), c.finish_reason
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0, r.usage
    return repr(c.message.content)

def chat_stream():
    s = client.chat.completions.create(model="nib", messages=[{"role": "system", "content": "Be brief."},
                                                             {"role": "user", "content": "Name a colour."}],
                                       max_tokens=12, temperature=0, stream=True,
                                       stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in s:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text and finish in ("stop", "length") and usage, (text, finish, usage)
    return repr(text)

def completion():
    r = client.completions.create(model="nib", prompt="Once upon a time", max_tokens=12, temperature=0, stop=["\n\n"])
    assert r.choices[0].text and r.choices[0].finish_reason in ("stop", "length"), r
    return repr(r.choices[0].text)

def completion_stream():
    text, finish = "", None
    for chunk in client.completions.create(model="nib", prompt="The capital of France is", max_tokens=8,
                                           temperature=0.7, seed=42, stream=True):
        text += chunk.choices[0].text
        finish = chunk.choices[0].finish_reason or finish
    assert text and finish, (text, finish)
    return repr(text)

def bad_request():
    try:
        client.chat.completions.create(model="nib", messages=[{"role": "user", "content": "x"}], n=2)
    except openai.BadRequestError as e:
        assert e.status_code == 400 and e.body["param"] == "n", e.body
        return e.body["message"]
    raise AssertionError("n=2 was accepted")

def bad_key():
    other = openai.OpenAI(base_url=os.environ["NIB_BASE"], api_key="wrong", max_retries=0)
    try:
        other.models.list()
    except openai.AuthenticationError as e:
        return e.body["code"]
    raise AssertionError("a wrong key was accepted")

for name, fn in [("models.list", models), ("chat.completions", chat), ("chat.completions stream", chat_stream),
                 ("completions", completion), ("completions stream", completion_stream),
                 ("n=2 -> BadRequestError", bad_request), ("wrong key -> AuthenticationError", bad_key)]:
    check(name, fn)
sys.exit(results.count(False))  # the number of failures
PY
py_rc=$?
set -e
# The Python checks print their own lines; their exit status is the number that failed.
if ((py_rc > 7)); then failed=$((failed + 7)); else passed=$((passed + 7 - py_rc)); failed=$((failed + py_rc)); fi

echo "--- shutdown"
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
check "SIGTERM exits 0" 0 "$rc"
echo "$passed passed, $failed failed"
((failed == 0))
