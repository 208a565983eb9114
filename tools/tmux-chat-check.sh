#!/usr/bin/env bash
# Drive `nib chat` through a real terminal (tmux), as a person would: a question and its streamed
# reply, Ctrl-C in the middle of a reply (the reply stops, the chat goes on), /help, /reset,
# a two-line message, Ctrl-D to leave (status 0); then Ctrl-C at the prompt (status 130). Prints each screen.
#   tools/tmux-chat-check.sh [MODEL]      (default: SmolLM2 under $NIB_MODELS or models/)
# Needs tmux (apt-get install -y tmux) and a built nib (cargo build --release, or NIB_BIN=...).
# Slow machines: replies stream at a few tokens/s; the waits below allow for that.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
nib=${NIB_BIN:-$root/target/release/nib}
model=${1:-${NIB_MODELS:-$root/models}/SmolLM2-135M-Instruct.Q4_1.gguf}
command -v tmux >/dev/null || { echo "error: tmux is not installed (apt-get install -y tmux)" >&2; exit 1; }
[[ -x $nib ]] || { echo "error: $nib not found: cargo build --release" >&2; exit 1; }
[[ -f $model ]] || { echo "error: $model not found: tools/fetch-models.sh" >&2; exit 1; }

s=nib-chat-check-$$
trap 'tmux kill-session -t "$s" 2>/dev/null || true' EXIT
screen() { tmux capture-pane -J -p -t "$s"; }
fail() { echo "FAIL: $*" >&2; echo "---- screen ----" >&2; screen >&2; exit 1; }
# wait_for PATTERN SECONDS: until the screen matches the extended regex
wait_for() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    screen | grep -Eq -- "$1" && return 0
    sleep 0.1
  done
  fail "no /$1/ on the screen after $2 s"
}
show() { screen | awk 'NF { last = NR } { line[NR] = $0 } END { for (i = 1; i <= last; i++) print line[i] }'; }
# wait_count PATTERN N SECONDS: until N lines of the screen match
wait_count() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [[ $(count "$1") -ge $2 ]] && return 0
    sleep 0.1
  done
  fail "fewer than $2 lines match /$1/ after $3 s"
}
count() { screen | grep -Ec -- "$1" || true; }
start() { # args for nib chat
  tmux kill-session -t "$s" 2>/dev/null || true
  tmux new-session -d -s "$s" -x 110 -y 45 \
    "$(printf '%q ' "$nib" chat -m "$model" "$@"); echo \"[nib exited: \$?]\"; sleep 600"
}

echo "== a question, Ctrl-C mid-reply, /help, /reset, Ctrl-D" >&2
start --temp 0 -n 48 -c 1024
wait_for '^> ?$' 60
tmux send-keys -t "$s" 'What is the capital of France?' Enter
wait_for 'prompt: [0-9]+ tokens.*cached: 0' 120
wait_for '^> ?$' 10
tmux send-keys -t "$s" 'Write a long story about a dragon who loves tea.' Enter
# Ctrl-C once the reply has started streaming (the line after the question has text).
for ((i = 0; i < 1200; i++)); do
  [[ -n $(screen | grep -A1 -- 'loves tea\.$' | tail -n +2 | tr -d '[:space:]') ]] && break
  sleep 0.1
done
sleep 1
tmux send-keys -t "$s" C-c
wait_for 'reply stopped' 30
wait_for 'stop: cancelled \| cached: [1-9]' 10
[[ $(count '^>( |$)') -ge 3 ]] || fail "no prompt after the stopped reply"
tmux send-keys -t "$s" '/help' Enter
wait_for '/reset +start a new conversation' 10
tmux send-keys -t "$s" '/reset' Enter
wait_for 'new conversation' 10
# A message over two lines (a trailing backslash continues it); the new conversation shares
# only the system prompt with the cache.
tmux send-keys -t "$s" 'Say hello\' Enter
wait_for '^\. ?$' 10
tmux send-keys -t "$s" 'in French.' Enter
wait_count 'stop: [a-z_]+ \| cached: [0-9]+ \| context: [0-9]+/1024' 3 120
tmux send-keys -t "$s" C-d
wait_for '\[nib exited: 0\]' 10
show

echo "== Ctrl-C at the prompt leaves" >&2
start --temp 0 -n 8 -c 512
wait_for '^> ?$' 60
tmux send-keys -t "$s" C-c
wait_for '\[nib exited: 130\]' 10
show
echo "tmux chat check: all good" >&2
