"""Load (issue 8): a stream of structures through the ASE calculator without memory growth, and a large
periodic structure evaluated in chunks with the same result.

The full-size runs (10⁴ structures, a 12288-atom water box in float64) are benchmarks/bench_load.py; here the
counts are reduced so that the file runs in seconds, with the same checks.
"""

import ctypes
import gc

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from minimace import MACE
from minimace.calculator import MiniMACECalculator
from minimace.graph import atoms_to_graph, batch_graphs

R_MAX = 3.5


def small_model():
    torch.manual_seed(0)
    return MACE(r_max=R_MAX, num_bessel=6, num_polynomial_cutoff=5, max_ell=2, correlation=3, num_interactions=2,
                hidden_irreps="8x0e+8x1o", MLP_irreps="4x0e", radial_MLP=[8, 8], avg_num_neighbors=6.0,
                atomic_numbers=[1, 6, 8], atomic_energies=[-1.0, -3.0, -5.0])


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def release_free_memory() -> None:
    """Return freed heap memory to the system (glibc ``malloc_trim``), so that RSS counts live memory only:
    otherwise a leak can hide in free-but-resident heap pages left by earlier tests."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: RSS is then an upper bound that may mask small leaks


def memory_slope(evaluate, n: int, warmup: int) -> float:
    """Least-squares growth of the resident memory, KiB per call, over calls ``warmup..n`` of ``evaluate(i)``.

    The objects alive before the first call (torch, sympy, ASE, earlier tests: ~10⁵ of them) are moved to the
    garbage collector's permanent generation (``gc.freeze``) for the measurement, so that each collection looks
    only at what the calls created (0.4 s per collection otherwise). Memory the calls keep is counted all the same:
    RSS is measured, not the collector's work.
    """
    calls, rss = [], []
    gc.collect()
    gc.freeze()
    try:
        for i in range(n):
            evaluate(i)
            if i >= warmup and i % 5 == 0:
                release_free_memory()
                calls.append(i)
                rss.append(rss_kib())
    finally:
        gc.unfreeze()
    return float(np.polyfit(calls, rss, 1)[0])


def molecule_stream():
    rng = np.random.default_rng(0)
    templates = [molecule(name) for name in ("CH3CH2OH", "H2O", "CH3OH", "CH3COCH3", "CH4")]

    def atoms(i):
        a = templates[i % len(templates)].copy()
        a.positions += 0.05 * rng.standard_normal(a.positions.shape)
        return a

    return atoms


# A leak of 64 KiB per call must be caught; the limit leaves room for allocator noise (measured: |slope| < 1 KiB).
MAX_SLOPE_KIB = 8.0
LEAK_KIB = 64


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stream_of_structures_does_not_grow_memory(dtype):
    calc = MiniMACECalculator(small_model(), dtype=dtype)
    atoms = molecule_stream()

    def evaluate(i):
        a = atoms(i)
        a.calc = calc
        assert np.isfinite(a.get_forces()).all()

    slope = memory_slope(evaluate, n=200, warmup=50)
    print(f"slope {slope:.2f} KiB per structure")
    assert slope < MAX_SLOPE_KIB, f"resident memory grows by {slope:.1f} KiB per structure"


def test_memory_checker_catches_a_leak():
    """Negative control: a calculator that keeps 64 KiB per call is flagged (every 4th call is a real one)."""
    calc = MiniMACECalculator(small_model(), dtype="float64")
    atoms = molecule_stream()
    kept = []

    def leaky(i):
        if i % 4 == 0:
            a = atoms(i)
            a.calc = calc
            a.get_forces()
        kept.append(np.ones(LEAK_KIB * 1024 // 8))  # touched memory, not just reserved

    slope = memory_slope(leaky, n=200, warmup=50)
    print(f"slope {slope:.2f} KiB per call")
    assert slope > MAX_SLOPE_KIB, f"the checker missed a {LEAK_KIB} KiB/call leak (slope {slope:.1f})"


def water_box(n_side: int, seed: int = 0) -> Atoms:
    """A periodic box of n_side³ water molecules on a jittered grid at ~1 g/cm³ (3.1 Å spacing)."""
    rng = np.random.default_rng(seed)
    a = 3.104
    mol = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.24, 0.9266, 0.0]])
    positions = []
    for ijk in np.ndindex(n_side, n_side, n_side):
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        positions.extend(a * np.array(ijk) + 0.2 * rng.standard_normal(3) + mol @ q.T)
    return Atoms("OH2" * n_side**3, positions=positions, cell=[a * n_side] * 3, pbc=True)


def test_large_periodic_structure_in_chunks():
    """~1500 atoms (the reduced 10⁴-atom case): chunked energy, forces and stress equal the unchunked ones."""
    model = small_model().double()
    batch = batch_graphs([atoms_to_graph(water_box(8), R_MAX, dtype=torch.float64)])
    n_edges = batch["edge_index"].shape[1]
    model.chunk_size = None
    ref = model(batch, compute_forces=True, compute_stress=True)
    model.chunk_size = n_edges // 7  # 8 edge chunks, chunk_size // 16 atoms per product-basis chunk
    out = model(batch, compute_forces=True, compute_stress=True)
    for key in ("energy", "forces", "stress"):
        err = float((out[key] - ref[key]).abs().max())
        assert err <= 1e-12 * max(1.0, float(ref[key].abs().max())), (key, err)
    assert float(out["forces"].sum(0).abs().max()) < 1e-10  # periodic: no net force
