"""Peak memory and time of energy + forces versus system size: minimace versus mace-torch 0.3.16.

Each case runs in its own subprocess (fresh peak RSS): build the model and the periodic water box
(192 · 8^k atoms, the 192-atom box repeated at fixed density), evaluate energy + forces ``--repeat`` times,
report the peak resident memory (VmHWM) and the increase over the resident memory before the first
evaluation (model, data and libraries excluded), and the median time. A child gets an address-space
limit (``--limit-gib``, RLIMIT_AS) so that a case that needs too much fails by itself instead of waking
the kernel's OOM killer on a shared machine.

    OMP_NUM_THREADS=2 .venv-mace/bin/python benchmarks/bench_memory.py                    # 1536 atoms
    OMP_NUM_THREADS=2 .venv-mace/bin/python benchmarks/bench_memory.py --sizes 192,1536,12288 --impls ours-chunked
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMPLS = ("mace", "ours", "ours-nochunk", "ours-chunked")  # ours = default MACE.chunk_size


def child(impl: str, n_atoms: int, dtype_name: str, repeat: int, chunk_size: int, threads: int) -> dict:
    sys.path.insert(0, str(HERE))
    import statistics

    import torch

    from common import both_models, current_rss_gib, mace_batch, mace_torch_model, minimace_batch, peak_rss_gib, water

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    atoms = water(n_atoms)
    batch = minimace_batch([atoms], dtype)
    if impl == "mace":
        model = mace_torch_model(dtype)
        data = mace_batch(batch, dtype)
        del batch

        def run():
            out = model(data, compute_force=True)
            return float(out["energy"].detach().sum())
    else:
        _, model = both_models(dtype)
        if impl == "ours-nochunk":
            model.chunk_size = None
        elif impl == "ours-chunked":
            model.chunk_size = chunk_size

        def run():
            out = model(batch, compute_forces=True)
            return float(out["energy"].detach().sum())
    rss0 = current_rss_gib()
    times, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        energy = run()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return dict(impl=impl, atoms=n_atoms, dtype=dtype_name, peak_gib=peak_rss_gib(), increase_gib=peak_rss_gib() - rss0,
                time_s=statistics.median(times), cpu_s=statistics.median(cpu), energy=energy, chunk_size=getattr(model, "chunk_size", None))


def run_case(impl, n_atoms, dtype, repeat, chunk_size, threads, limit_gib) -> dict:
    def limit():
        b = int(limit_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (b, b))

    cmd = [sys.executable, __file__, "--child", json.dumps([impl, n_atoms, dtype, repeat, chunk_size, threads])]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (p.stderr.strip().splitlines() or ["?"])[-1]
    return dict(impl=impl, atoms=n_atoms, dtype=dtype, failed=f"exit {p.returncode}: {tail[:120]}",
                wall_s=time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="1536")
    p.add_argument("--dtypes", default="float64")
    p.add_argument("--impls", default="mace,ours,ours-nochunk")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--chunk-size", type=int, default=20000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit-gib", type=float, default=20.0)
    p.add_argument("--out", default=str(HERE / "results_memory.md"))
    args = p.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(*json.loads(args.child))), flush=True)
        return
    rows = []
    for dtype in args.dtypes.split(","):
        for n in [int(s) for s in args.sizes.split(",")]:
            for impl in args.impls.split(","):
                r = run_case(impl, n, dtype, args.repeat, args.chunk_size, args.threads, args.limit_gib)
                rows.append(r)
                print(json.dumps(r), flush=True)
    write_table(rows, args)


def write_table(rows, args):
    lines = [
        f"### Peak memory and time, energy + forces on periodic water boxes — {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"One subprocess per row, {args.threads} threads, address space limited to {args.limit_gib} GiB; peak = VmHWM "
        "of the process, increase = peak minus the resident memory before the first evaluation. "
        f"ours: minimace with its default `MACE.chunk_size`; ours-nochunk: `chunk_size = None`; "
        f"ours-chunked: `model.chunk_size = {args.chunk_size}`.",
        "",
        "| impl | chunk_size | dtype | atoms | peak RSS | increase | wall time | CPU time | CPU time / atom |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['impl']} | | {r['dtype']} | {r['atoms']} | failed: {r['failed']} | | | | |")
        else:
            lines.append(f"| {r['impl']} | {r.get('chunk_size') or '–'} | {r['dtype']} | {r['atoms']} | {r['peak_gib']:.2f} GiB | "
                         f"{r['increase_gib']:.2f} GiB | {r['time_s']:.1f} s | {r['cpu_s']:.1f} s | {r['cpu_s'] / r['atoms'] * 1e3:.1f} ms |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
