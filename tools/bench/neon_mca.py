#!/usr/bin/env python3
"""Static throughput of Tern's NEON decode kernels on a Cortex-A76 core (the Raspberry Pi 5's),
by llvm-mca's Neoverse N1 model (N1 is the A76's server sibling; llvm-mca 19 has no A76 model of
its own and maps `-mcpu=cortex-a76` to a Cortex-A57 one).

These machines have no ARM hardware and qemu times are not performance figures, so this is
the next best thing: the compiled inner loop of each kernel, as `rustc` emits it for
`aarch64-unknown-linux-gnu`, through the scheduling model of the Pi 5's core. It shows the
cycles per loop iteration a core needs when its data is in cache, so the compute ceiling of
each kernel in GB/s of weights at a given clock. It does not model memory: whether a kernel
is compute- or bandwidth-bound on a device needs the device's bandwidth (`tern bench
--roofline` on it).

    apt-get install llvm-19                    # llvm-mca-19
    rustup target add aarch64-unknown-linux-gnu
    python3 tools/bench/neon_mca.py [--ghz 2.4]

Each kernel's loop is found as the innermost loop (a backward branch with no loop inside it)
with the most instructions in the named function, optionally one that contains a given
mnemonic; the bytes of weights one iteration reads were read off the loops' pointer
increments. Standard library only (plus llvm-mca-19, c++filt and cargo).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (kernel, demangled function path fragment, mnemonic the loop must contain, weight bytes per
# iteration)
KERNELS = [
    ("T2_128 matvec, NEON+dotprod (2 rows x 1 block)", "ternary::neon_dot::matvec_impl", "sdot", 64),
    ("T2_128 matvec, NEON (2 rows x 1 block)", "ternary::neon::matvec_t2_i8_neon", None, 64),
    ("T1_160 matvec, NEON+dotprod (2 rows x 1 block)", "ternary::neon_dot::matvec_t1_impl", "sdot", 64),
    ("T1_160 matvec, NEON (2 rows x 1 block)", "ternary::neon_t1::matvec_t1_i8_neon", None, 64),
    ("F16 row dot: LM head, F16 KV (32 elements)", "float::neon::dot_impl", "fcvtl", 64),
    ("BF16 row dot (32 elements)", "float::neon::dot_impl", "shll", 64),
    ("Q4_0 head matvec, NEON+dotprod (8 blocks)", "float::neon_dot::matvec_q4_impl", "sdot", 144),
    ("Q8_0 head dot, NEON+dotprod (8 blocks)", "float::neon_dot::dot_impl", "-and", 272),
    ("Q4_0 head dot, NEON (8 blocks)", "float::neon::dot_q4_0_row_neon", None, 144),
    ("Q8_0 head dot, NEON (8 blocks)", "float::neon::dot_q8_0_row_neon", None, 272),
]

BRANCH = re.compile(r"^(b\.\w+|b|cbnz|cbz|tbnz|tbz)\s")


def emit_asm() -> str:
    """The kernels crate's assembly for aarch64 Linux, one codegen unit."""
    target = os.path.join(ROOT, "target", "aarch64-unknown-linux-gnu", "release", "deps")
    for f in glob.glob(os.path.join(target, "tern_kernels-*.s")):
        os.remove(f)
    subprocess.run(
        ["cargo", "rustc", "--release", "--target", "aarch64-unknown-linux-gnu",
         "-p", "tern-kernels", "--lib", "--", "--emit", "asm", "-C", "codegen-units=1"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    files = glob.glob(os.path.join(target, "tern_kernels-*.s"))
    if len(files) != 1:
        sys.exit(f"neon_mca: expected one tern_kernels-*.s under {target}, found {files}")
    with open(files[0]) as f:
        return f.read()


def functions(asm: str) -> list[tuple[str, list[str]]]:
    """(demangled name, instruction and label lines) of every function in `asm`."""
    lines = asm.split("\n")
    starts = [i for i, l in enumerate(lines) if re.match(r"^_ZN\S+:$", l)]
    names = subprocess.run(["c++filt"], input="\n".join(lines[i][:-1] for i in starts),
                           capture_output=True, text=True, check=True).stdout.split("\n")
    out = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        body = []
        for l in lines[start + 1:end]:
            s = l.split("//")[0].strip()
            if s.startswith(".Lfunc_end"):
                break
            if not s or s.startswith((".cfi", ".loc", ".p2align", ".file", ".Ltmp")):
                continue
            if s.endswith(":") or not s.startswith("."):
                body.append(s)
        out.append((names[n], body))
    return out


def inner_loops(body: list[str]) -> list[list[str]]:
    """Instructions of every innermost loop of a function body."""
    labels = {s[:-1]: k for k, s in enumerate(body) if s.endswith(":")}
    loops = []
    for k, s in enumerate(body):
        if BRANCH.match(s):
            tgt = re.split(r"[\s,]+", s)[-1]
            if tgt in labels and labels[tgt] < k:
                loops.append((labels[tgt], k))
    inner = [l for l in loops
             if not any(o != l and l[0] <= o[0] and o[1] <= l[1] for o in loops)]
    return [[x for x in body[a + 1:b + 1] if not x.endswith(":")] for a, b in inner]


def has(loop: list[str], mnem: str) -> bool:
    return any(re.split(r"\s+", x)[0] == mnem for x in loop)


def cycles(loop: list[str]) -> float:
    """llvm-mca's cycles per iteration of `loop` on Neoverse N1 (steady state, 500 runs)."""
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        f.write("\n".join(loop) + "\n")
        path = f.name
    try:
        out = subprocess.run(
            ["llvm-mca-19", "-mtriple=aarch64", "-mcpu=neoverse-n1", "-mattr=+dotprod",
             "-iterations=500", path], capture_output=True, text=True, check=True).stdout
    finally:
        os.remove(path)
    m = re.search(r"Total Cycles:\s+(\d+)", out)
    if not m:
        sys.exit("neon_mca: no cycle count in llvm-mca's output")
    return int(m.group(1)) / 500


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ghz", type=float, default=2.4, help="core clock for GB/s (Pi 5: 2.4)")
    args = ap.parse_args()
    funcs = functions(emit_asm())
    print(f"| kernel loop | instructions | cycles / iteration | weight bytes / cycle "
          f"| GB/s at {args.ghz} GHz |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, frag, mnem, nbytes in KERNELS:
        cands = []
        for dn, body in functions_matching(funcs, frag):
            for loop in inner_loops(body):
                if any(BRANCH.match(x) is None and x.startswith("bl") for x in loop):
                    continue
                if mnem and (has(loop, mnem[1:]) if mnem.startswith("-") else not has(loop, mnem)):
                    continue
                cands.append(loop)
        if not cands:
            sys.exit(f"neon_mca: no loop found for {name} ({frag}, {mnem})")
        loop = max(cands, key=len)
        c = cycles(loop)
        print(f"| {name} | {len(loop)} | {c:.1f} | {nbytes / c:.2f} "
              f"| {nbytes / c * args.ghz:.1f} |")


def functions_matching(funcs, frag):
    return [(dn, body) for dn, body in funcs if frag + "::" in dn + "::"]


if __name__ == "__main__":
    main()
