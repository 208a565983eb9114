#!/usr/bin/env python3
"""The ARM proxy's page-boundary artefact, measured for both engines alike.

`../shared/tools/arm/measure.sh` counts qemu's translation blocks, and qemu never lets a block
cross a 4 KiB page: a straight-line loop body that straddles a page boundary becomes two blocks,
which llvm-mca costs separately, so the model loses the overlap between the halves (on the real
core, fetch crosses the page without a seam). This script finds, in each run's block counts
(`runs/ENGINE__MODEL__PHASE_r1.bb` / `_r2.bb`, the same per-token difference the proxy takes),
every hot pair (A falls through into B, B starts a page) and reprices the pair as one block:

    saved = min(execs A, execs B) * (mca(A) + mca(B) - mca(A then B))

It prints, per run, the proxy's cycles per token and the cycles with those pairs merged, and per
model the nib / llama.cpp ratios both ways. It changes nothing in the proxy's own table.

    bench/arm/page_split.py [--arm ~/.cache/nib-arm] [--tools ../shared/tools/arm] [--tokens pp=64,tg=16]
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arm", default=os.path.expanduser("~/.cache/nib-arm"))
    ap.add_argument("--tools", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "tools", "arm"))
    ap.add_argument("--min-share", type=float, default=0.002, help="smallest pair, as a share of the run's instructions")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.tools))
    import analyze  # the proxy's own block reader and llvm-mca costing

    runs = os.path.join(args.arm, "runs")
    tokens = {"pp": 64, "tg": 16}
    cache = {}
    if os.path.exists(analyze.CACHE):
        with open(analyze.CACHE) as f:
            cache = json.load(f)
    results = {}
    for name in sorted(os.listdir(runs)):
        if not name.endswith(".json") or "__" not in name:
            continue
        run = name[:-5]
        engine, model, phase = run.split("__")
        with open(os.path.join(runs, name)) as f:
            proxy = json.load(f)
        a = analyze.load(os.path.join(runs, run + "_r1.bb"))
        b = analyze.load(os.path.join(runs, run + "_r2.bb"))
        delta = {}
        for k, blk in b.items():
            d = blk["count"] - a.get(k, {"count": 0})["count"]
            if d > 0:
                delta[k] = dict(blk, count=d)
        total = sum(blk["count"] * len(blk["words"]) for blk in delta.values())
        # Blocks ending where each page-starting block begins (several can: a loop's entry and
        # its body's first half); B's executions go to them, the most executed first.
        ends = {}
        for (pc, n) in delta:
            ends.setdefault(pc + 4 * n, []).append((pc, n))
        saved, pairs = 0.0, []
        for (pc, n), blk in delta.items():
            if pc % 4096 or pc not in ends:
                continue
            left = blk["count"]
            for key in sorted(ends[pc], key=lambda k: -delta[k]["count"]):
                first = delta[key]
                execs = min(first["count"], left)
                left -= execs
                if execs * (len(first["words"]) + n) < args.min_share * total:
                    continue
                ca = analyze.mca_cycles(first["words"], cache)
                cb = analyze.mca_cycles(blk["words"], cache)
                cab = analyze.mca_cycles(first["words"] + blk["words"], cache)
                if None in (ca, cb, cab):
                    continue
                gain = execs * (ca + cb - cab)
                if gain > 0:
                    saved += gain
                    pairs.append("%x+%x: %.2f+%.2f -> %.2f cyc x %d" % (key[0], pc, ca, cb, cab, execs))
        per_tok = saved / tokens[phase]
        results[(model, phase, engine)] = (proxy["cycles_per_token"], proxy["cycles_per_token"] - per_tok)
        print("%-5s %-34s %s  proxy %8.3fM  merged %8.3fM  %s" % (
            engine, model, phase, proxy["cycles_per_token"] / 1e6,
            (proxy["cycles_per_token"] - per_tok) / 1e6, "; ".join(pairs)))
    with open(analyze.CACHE, "w") as f:
        json.dump(cache, f)
    print("\n| model | phase | nib/llama.cpp (proxy) | nib/llama.cpp (page pairs merged) |")
    print("|---|---|---:|---:|")
    for (model, phase, engine), (p, m) in sorted(results.items()):
        if engine != "nib" or (model, phase, "llama") not in results:
            continue
        lp, lm = results[(model, phase, "llama")]
        print("| %s | %s | %.2f | %.2f |" % (model, phase, p / lp, m / lm))


if __name__ == "__main__":
    main()
