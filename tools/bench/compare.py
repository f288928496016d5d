#!/usr/bin/env python3
"""Tern against llama.cpp, measured in the same run: interleaved rounds of `tern bench --json`
and `llama-bench -o json` on the same machine, the same model shape and the same thread counts.

Both print JSON arrays of records with llama-bench's field names (`n_prompt`, `n_gen`,
`n_threads`, `avg_ts`), so one parser reads both. Each round runs every model once (the order
reversed every other round, so neither runtime always runs first); a shared VM's speed drifts
by tens of percent over minutes, so the ratios are taken per round (each Tern result against
the best llama.cpp result of that round, same test and threads) and summarized by their
median, next to each runtime's own per-round figures.

    python3 tools/bench/compare.py --tern target/release/tern --llama-bench PATH \\
        --tern-model m.tern --tern-model m-q4.tern --gguf m.gguf --gguf m-tq1.gguf \\
        -p 128 -n 64 -t 1,2 --reps 3 --rounds 3 --out bench-out

`-d N` runs every test N tokens deep into a context (both benches' `-d`: that many prompt
tokens evaluated, untimed, first), so decode reads the KV cache of N positions too.

`--tern-load-mode` and `--llama-load-mode` (each `mmap`, `none` or `mmap,none`, llama-bench's
`-lm` values) choose how each runtime holds the weights: mapped from the file, or read into
memory (`tern bench --no-mmap`, `llama-bench -lm none`); every model runs once per mode and
round, and a mode other than `mmap` is named next to the file in the report.

Prints a markdown report; the raw JSON of every run is kept under --out. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def test_name(rec: dict) -> str | None:
    """`pp128` / `tg64` (`tg64 @ d1024` after a context depth, llama-bench's naming) for a
    llama-bench-style record, None for a combined test."""
    p, g = int(rec.get("n_prompt", 0)), int(rec.get("n_gen", 0))
    d = int(rec.get("n_depth", 0))
    at = f" @ d{d}" if d > 0 else ""
    if p > 0 and g == 0:
        return f"pp{p}{at}"
    if g > 0 and p == 0:
        return f"tg{g}{at}"
    return None


def parse_records(text: str, source: str) -> list[dict]:
    """The JSON array a bench printed (llama-bench may print log lines before it)."""
    start = text.find("[")
    if start < 0:
        raise SystemExit(f"{source}: no JSON array in its output")
    try:
        recs = json.loads(text[start:])
    except json.JSONDecodeError as e:
        raise SystemExit(f"{source}: output is not a JSON array of records: {e}") from e
    if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
        raise SystemExit(f"{source}: expected a JSON array of objects")
    for r in recs:
        for k in ("n_prompt", "n_gen", "n_threads", "avg_ts"):
            if k not in r:
                raise SystemExit(f"{source}: a record lacks the field `{k}`")
    return recs


def run(cmd: list[str], source: str) -> list[dict]:
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"{source}: `{' '.join(cmd)}` exited with {p.returncode}")
    print(f"  {source}: {time.time() - t0:.0f} s", file=sys.stderr)
    return parse_records(p.stdout, source)


def fmt(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tern", required=True, help="the tern binary")
    ap.add_argument("--llama-bench", required=True, help="llama.cpp's llama-bench binary")
    ap.add_argument("--tern-model", action="append", default=[], help="model for tern bench (repeatable)")
    ap.add_argument("--gguf", action="append", default=[], help="GGUF for llama-bench (repeatable)")
    ap.add_argument("-p", "--n-prompt", type=int, default=128)
    ap.add_argument("-n", "--n-gen", type=int, default=64)
    ap.add_argument("-d", "--n-depth", type=int, default=0,
                    help="context depth: tokens evaluated, untimed, before every test (both benches' -d)")
    ap.add_argument("-t", "--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per test and run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="bench-out", help="folder for the raw JSON of every run")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: report the rounds whose JSON is already under --out")
    ap.add_argument("--roofline", action="store_true",
                    help="pass --roofline to tern bench and report its decode share of the bandwidth ceiling")
    ap.add_argument("--tern-load-mode", default="mmap",
                    help="mmap, none (tern bench --no-mmap) or both, comma-separated")
    ap.add_argument("--llama-load-mode", default="mmap",
                    help="mmap, none (llama-bench -lm none) or both, comma-separated")
    a = ap.parse_args()
    modes = {}
    for kind, arg in (("Tern", a.tern_load_mode), ("llama.cpp", a.llama_load_mode)):
        modes[kind] = [m.strip() for m in arg.split(",")]
        if not modes[kind] or any(m not in ("mmap", "none") for m in modes[kind]):
            ap.error(f"{kind} load mode: expected mmap, none or mmap,none, got {arg!r}")
    if not a.tern_model or not a.gguf:
        ap.error("give at least one --tern-model and one --gguf")
    for f in ([] if a.report_only else [a.tern, a.llama_bench]) + [*a.tern_model, *a.gguf]:
        if not os.path.exists(f):
            ap.error(f"{f}: no such file")
    os.makedirs(a.out, exist_ok=True)

    # A run: (runtime, model file, load mode).
    runs = [("Tern", m, lm) for m in a.tern_model for lm in modes["Tern"]] + \
        [("llama.cpp", g, lm) for g in a.gguf for lm in modes["llama.cpp"]]

    def label(r: tuple[str, str, str]) -> str:
        """The model file's name, with the load mode when it is not the default (mmap)."""
        return os.path.basename(r[1]) + ("" if r[2] == "mmap" else f" (load: {r[2]})")

    def command(kind: str, model: str, load: str) -> list[str]:
        if kind == "Tern":
            return [a.tern, "bench", model, "-p", str(a.n_prompt), "-n", str(a.n_gen), "-d", str(a.n_depth),
                    "-t", a.threads,
                    "--reps", str(a.reps), "--kv", "f16", "--json", *(["--roofline"] if a.roofline else []),
                    *(["--no-mmap"] if load == "none" else [])]
        return [a.llama_bench, "-m", model, "-p", str(a.n_prompt), "-n", str(a.n_gen), "-d", str(a.n_depth),
                "-t", a.threads,
                "-r", str(a.reps), "-ctk", "f16", "-ctv", "f16", "-o", "json",
                *(["-lm", "none"] if load == "none" else [])]

    # results[run][(test, threads)] = [avg_ts of round 1, 2, ...]
    results: dict[tuple[str, str, str], dict[tuple[str, int], list[float]]] = {r: {} for r in runs}
    # shares[run][(test, threads)] = [roofline_share of round 1, 2, ...] (Tern, tg)
    shares: dict[tuple[str, str, str], dict[tuple[str, int], list[float]]] = {r: {} for r in runs}
    # huge[run] = [weights mapped with huge pages, bytes, per round] (Tern, --roofline)
    huge: dict[tuple[str, str, str], list[tuple[int, int]]] = {r: [] for r in runs}
    # cpus[kind] = the CPU and kernels each runtime reported (llama-bench's and Tern's `cpu_info`)
    cpus: dict[str, set[str]] = {}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for rnd in range(a.rounds):
        order = runs if rnd % 2 == 0 else runs[::-1]
        print(f"round {rnd + 1}/{a.rounds}", file=sys.stderr)
        for run_ in order:
            kind, model, load = run_
            source = f"{kind} {label(run_)}"
            suffix = "" if load == "mmap" else f"_{load}"
            path = os.path.join(a.out, f"r{rnd + 1}_{kind}_{os.path.basename(model)}{suffix}.json")
            if a.report_only:
                with open(path) as f:
                    recs = parse_records(f.read(), path)
            else:
                recs = run(command(kind, model, load), source)
                with open(path, "w") as f:
                    json.dump(recs, f, indent=1)
            if recs and "weights_huge_page_bytes" in recs[0] and "model_file_bytes" in recs[0]:
                huge[run_].append((int(recs[0]["weights_huge_page_bytes"]), int(recs[0]["model_file_bytes"])))
            for r in recs:
                if "cpu_info" in r:
                    extra = [f"{f}: {r[f]}" for f in ("cpu_features", "kernels", "backends") if r.get(f)]
                    cpus.setdefault(kind, set()).add("; ".join([str(r["cpu_info"]), *extra]))
                name = test_name(r)
                if name:
                    key = (name, int(r["n_threads"]))
                    results[run_].setdefault(key, []).append(float(r["avg_ts"]))
                    if "roofline_share" in r:
                        shares[run_].setdefault(key, []).append(float(r["roofline_share"]))
    ended = time.strftime("%H:%M UTC", time.gmtime())

    keys = {k for v in results.values() for k in v}
    names = sorted({t for t, _ in keys}, key=lambda t: (t[:2] != "pp", t))  # pp tests first
    threads = sorted({n for _, n in keys})
    when = f"from {a.out}" if a.report_only else f"{started} – {ended}"
    print(f"{a.rounds} interleaved rounds, {when}; each value the mean of {a.reps} "
          f"repetitions (tok/s), rounds in order, then the median.\n")
    for kind in sorted(cpus):
        print(f"CPU as {kind} reported it: " + " | ".join(sorted(cpus[kind])))
    if cpus:
        print()
    print("| runtime, file | threads | " + " | ".join(names) + " |")
    print("| --- | --- |" + " --- |" * len(names))
    for r in runs:
        for n in threads:
            cells = []
            for t in names:
                v = results[r].get((t, n), [])
                cells.append(", ".join(fmt(x) for x in v) + f" (**{fmt(statistics.median(v))}**)" if v else "–")
            print(f"| {r[0]}, {label(r)} | {n} | " + " | ".join(cells) + " |")

    peer_files = [r for r in runs if r[0] == "llama.cpp"]
    # Against the best llama.cpp run of each round, then against each run alone.
    for against, group in [("the best llama.cpp run (file and load mode)", peer_files)] + (
            [(f"llama.cpp `{label(r)}`", [r]) for r in peer_files] if len(peer_files) > 1 else []):
        print(f"\nTern against {against} of the same round (same test, same threads): "
              "per-round ratios, then their median.\n")
        print("| Tern file | threads | " + " | ".join(names) + " |")
        print("| --- | --- |" + " --- |" * len(names))
        for r in runs:
            if r[0] != "Tern":
                continue
            for n in threads:
                cells = []
                for t in names:
                    mine = results[r].get((t, n), [])
                    peers = [results[g].get((t, n), []) for g in group]
                    ratios = []
                    for i, v in enumerate(mine):
                        best = max((p[i] for p in peers if len(p) > i), default=0.0)
                        if best > 0:
                            ratios.append(v / best)
                    cells.append(", ".join(f"{x:.2f}×" for x in ratios) + f" (**{statistics.median(ratios):.2f}×**)"
                                 if ratios else "–")
                print(f"| {label(r)} | {n} | " + " | ".join(cells) + " |")

    if any(shares[r] for r in runs):
        print("\nTern decode, share of the bandwidth ceiling (`tern bench --roofline`: each repetition "
              "against a probe round right before it, the faster of a plain and a prefetched pass over "
              "a buffer advised to huge pages): per round, then the median.\n")
        print("| Tern file | threads | test | share of ceiling |")
        print("| --- | --- | --- | --- |")
        for r in runs:
            for (t, n), v in sorted(shares[r].items(), key=lambda kv: (kv[0][1], kv[0][0])):
                print(f"| {label(r)} | {n} | {t} | "
                      + ", ".join(f"{x * 100:.0f} %" for x in v) + f" (**{statistics.median(v) * 100:.0f} %**) |")
    if any(huge[r] for r in runs):
        print("\nTern's weights in huge pages (`weights_huge_page_bytes` of `model_file_bytes`), per round: "
              + "; ".join(f"{label(r)} " + ", ".join(f"{h / 2**30:.2f}" for h, _ in huge[r])
                          + f" of {huge[r][0][1] / 2**30:.2f} GiB" for r in runs if huge[r]) + ".")


if __name__ == "__main__":
    main()
