#!/usr/bin/env python3
"""Bounded load test of `nib serve` on loopback (Python standard library only).

Starts `nib serve` once per --parallel value (default: 1, then 4), sends --requests completion
requests (default 200) from --clients concurrent clients (default 16), short outputs
(--max-tokens, default 8), and reports throughput and latency percentiles for each, then stops
the server with SIGTERM. Everything is bounded: request count, and --deadline seconds per run
(requests not started by then are skipped and reported).

    python3 bench/load_test.py [-m MODEL] [--nib target/release/nib] [--threads 2]
    python3 bench/load_test.py --url http://127.0.0.1:8080   # an already running server

Only loopback addresses are accepted for --url.
"""

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

PROMPTS = [
    "Once upon a time",
    "The capital of France is",
    "Write a haiku about the sea:",
    "List three fruits:",
    "The best way to learn Rust is",
    "In 1969, astronauts",
    "My favourite colour is",
    "A good breakfast includes",
]


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class Server:
    """`nib serve --port 0` as a child process; the port is read from its stderr."""

    def __init__(self, nib, model, parallel, threads, ctx, queue, extra=()):
        cmd = [nib, "serve", "--port", "0", "--parallel", str(parallel), "-c", str(ctx), "--queue", str(queue)]
        cmd += list(extra)
        if model:
            cmd += ["-m", model]
        if threads:
            cmd += ["-t", str(threads)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.port = None
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"listening on http://[^ ]*:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            raise SystemExit("nib serve did not start:\n" + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()
        t0 = time.time()
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() - t0 > 120 or self.proc.poll() is not None:
                raise SystemExit("nib serve did not become healthy:\n" + "".join(self.log))
            time.sleep(0.1)

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def run_load(host, port, n_requests, n_clients, max_tokens, deadline_s):
    lock = threading.Lock()
    next_index = [0]
    results = []  # (status, latency_s, completion_tokens, server_predicted_tps)
    t_end = time.time() + deadline_s

    def client():
        conn = http.client.HTTPConnection(host, port, timeout=max(60, deadline_s))
        while True:
            with lock:
                i = next_index[0]
                if i >= n_requests or time.time() > t_end:
                    break
                next_index[0] += 1
            body = json.dumps({"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens,
                               "temperature": 0.7, "seed": i})
            t0 = time.time()
            try:
                conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                status = r.status
            except OSError as e:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=max(60, deadline_s))
                status, data = f"error: {e}", b""
            dt = time.time() - t0
            tokens, tps = 0, 0.0
            if status == 200:
                v = json.loads(data)
                tokens = v["usage"]["completion_tokens"]
                tps = v.get("timings", {}).get("predicted_per_second", 0.0)
            with lock:
                results.append((status, dt, tokens, tps))
        conn.close()

    t0 = time.time()
    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    return results, wall


def report(label, results, wall, n_requests):
    ok = [r for r in results if r[0] == 200]
    lat = [r[1] for r in ok]
    tokens = sum(r[2] for r in ok)
    statuses = {}
    for r in results:
        statuses[str(r[0])] = statuses.get(str(r[0]), 0) + 1
    row = {
        "config": label,
        "requests": len(results),
        "skipped": n_requests - len(results),
        "ok": len(ok),
        "statuses": statuses,
        "wall_s": round(wall, 2),
        "req_per_s": round(len(ok) / wall, 3) if wall > 0 else 0,
        "gen_tok_per_s": round(tokens / wall, 2) if wall > 0 else 0,
        "p50_s": round(percentile(lat, 50), 3),
        "p90_s": round(percentile(lat, 90), 3),
        "p99_s": round(percentile(lat, 99), 3),
        "max_s": round(max(lat), 3) if lat else None,
        "slot_tok_per_s_median": round(percentile([r[3] for r in ok], 50), 2),
    }
    print(json.dumps(row))
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--nib", default=os.path.join(root, "target", "release", "nib"))
    ap.add_argument("-m", "--model", help="GGUF model (default: nib's default model)")
    ap.add_argument("--url", help="use this running server (loopback only) instead of starting one")
    ap.add_argument("--parallel", default="1,4", help="slot counts to compare (comma-separated)")
    ap.add_argument("-t", "--threads", type=int, help="nib serve -t")
    ap.add_argument("-c", "--ctx", type=int, default=256, help="context per slot")
    ap.add_argument("--serve-args", default="", help="more nib serve options, e.g. '--slot-threads 1'")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--deadline", type=float, default=600, help="seconds per run; later requests are skipped")
    a = ap.parse_args()
    if a.requests > 10000 or a.clients > 256:
        raise SystemExit("keep it bounded: at most 10000 requests and 256 clients")

    print(f"# {a.requests} requests, {a.clients} clients, max_tokens {a.max_tokens}, "
          f"cpus {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    if a.url:
        u = urllib.parse.urlparse(a.url)
        if u.hostname not in ("127.0.0.1", "localhost", "::1") and not (u.hostname or "").startswith("127."):
            raise SystemExit("--url must be a loopback address")
        results, wall = run_load(u.hostname, u.port or 80, a.requests, a.clients, a.max_tokens, a.deadline)
        rows.append(report(a.url, results, wall, a.requests))
    else:
        for p in [int(x) for x in a.parallel.split(",")]:
            srv = Server(a.nib, a.model, p, a.threads, a.ctx, queue=max(64, a.clients), extra=a.serve_args.split())
            try:
                run_load("127.0.0.1", srv.port, 2, 1, a.max_tokens, 60)  # warm-up
                results, wall = run_load("127.0.0.1", srv.port, a.requests, a.clients, a.max_tokens, a.deadline)
            finally:
                rc = srv.stop()
            rows.append(report(f"--parallel {p} {a.serve_args}".strip(), results, wall, a.requests))
            if rc != 0:
                print(f"# warning: nib serve exited {rc}", file=sys.stderr)
    if len(rows) > 1:
        base = rows[0]["req_per_s"] or float("nan")
        for r in rows[1:]:
            print(f"# {r['config']}: {r['req_per_s'] / base:.2f}x the throughput of {rows[0]['config']}")


if __name__ == "__main__":
    main()
