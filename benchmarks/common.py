"""Shared helpers of the benchmarks: the benchmark model, test structures, batches and timers.

Run in the mace-torch environment (``.venv-mace``): ``import mace`` must come before ``e3nn.o3``.
Both implementations get the SAME weights: a mace-torch model is built with its own random
initialisation and converted with :func:`minimace.interop.from_mace_torch`.
"""

from __future__ import annotations

import statistics
import time

import mace  # noqa: F401  (before e3nn.o3)
import numpy as np
import torch
from e3nn import o3
from mace.modules import MACE as MaceMACE
from mace.modules import RealAgnosticInteractionBlock, RealAgnosticResidualInteractionBlock

from common_minimace import proc_status_gib  # noqa: E402  (one reader of /proc/self/status)
from minimace.datasets import require
from minimace.graph import atoms_to_graph, batch_graphs
from minimace.interop import from_mace_torch

Z = [1, 6, 7, 8]  # H, C, N, O
E0 = [-13.587, -1029.489, -1484.981, -2041.982]

#: the hyperparameters of the targets (docs/performance.md)
HPARAMS = dict(r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3, correlation=3, num_interactions=2,
               hidden_irreps="128x0e+128x1o", MLP_irreps="16x0e", radial_MLP=[64, 64, 64])


def mace_torch_model(dtype=torch.float64, hidden_irreps=HPARAMS["hidden_irreps"], avg_num_neighbors=20.0, seed=0):
    """A mace-torch 0.3.16 ``MACE`` with the benchmark hyperparameters (random weights, seeded)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(seed)
        mm = MaceMACE(
            r_max=HPARAMS["r_max"], num_bessel=HPARAMS["num_bessel"],
            num_polynomial_cutoff=HPARAMS["num_polynomial_cutoff"], max_ell=HPARAMS["max_ell"],
            interaction_cls=RealAgnosticResidualInteractionBlock, interaction_cls_first=RealAgnosticInteractionBlock,
            num_interactions=HPARAMS["num_interactions"], num_elements=len(Z), hidden_irreps=o3.Irreps(hidden_irreps),
            MLP_irreps=o3.Irreps(HPARAMS["MLP_irreps"]), atomic_energies=np.array(E0),
            avg_num_neighbors=avg_num_neighbors, atomic_numbers=Z, correlation=HPARAMS["correlation"],
            gate=torch.nn.functional.silu, radial_MLP=HPARAMS["radial_MLP"],
        )
    finally:
        torch.set_default_dtype(old)
    return mm.to(dtype)


def both_models(dtype=torch.float64, **kwargs):
    """(mace-torch model, minimace model) with identical weights."""
    mm = mace_torch_model(dtype, **kwargs)
    ours = from_mace_torch(mm).to(dtype)
    return mm, ours


# ----------------------------------------------------------------------------- structures
def ethanol():
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    atoms.positions += 0.05 * np.random.default_rng(0).standard_normal(atoms.positions.shape)
    return atoms


def bpa3():
    """A 27-atom 3BPA configuration (first frame of botnet_3bpa/train_300K.xyz)."""
    import ase.io

    return ase.io.read(require("botnet_3bpa") / "botnet_3bpa" / "train_300K.xyz", index=0)


def water_box(n_molecules: int = 64, density: float = 1.0, seed: int = 0, d_min: float = 2.5):
    """Liquid-water-like periodic box: ``n_molecules`` rigid H2O at ``density`` g/cm³, random positions
    and orientations, oxygen–oxygen distances >= ``d_min`` Å (seeded random sequential packing)."""
    from ase import Atoms
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    volume = n_molecules * 18.015 / 0.602214 / density  # Å³
    L = volume ** (1 / 3)
    mol = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])  # O, H, H (104.5°)
    oxygens = []
    while len(oxygens) < n_molecules:
        p = rng.uniform(0, L, 3)
        if oxygens:
            d = np.asarray(oxygens) - p
            d -= L * np.round(d / L)
            if np.min(np.linalg.norm(d, axis=1)) < d_min:
                continue
        oxygens.append(p)
    positions = []
    for p in oxygens:
        R = Rotation.random(random_state=rng).as_matrix()
        positions.extend(p + mol @ R.T)
    atoms = Atoms("OH2" * n_molecules, positions=positions, cell=[L, L, L], pbc=True)
    atoms.wrap()
    return atoms


def water(n_atoms: int):
    """Water box of ``n_atoms`` = 192 · 8^k atoms: the 192-atom box repeated (fixed density, same local order)."""
    base = water_box(64)
    k = round(np.log(n_atoms / 192) / np.log(8))
    if 192 * 8**k != n_atoms:
        raise ValueError(f"n_atoms must be 192·8^k, got {n_atoms}")
    return base.repeat((2**k,) * 3)


STRUCTURES = {"ethanol": ethanol, "3bpa": bpa3, "water192": lambda: water(192)}


# ----------------------------------------------------------------------------- batches
def minimace_batch(atoms_list, dtype=torch.float64):
    graphs = [atoms_to_graph(a, HPARAMS["r_max"], dtype=dtype) for a in atoms_list]
    return batch_graphs(graphs)


def mace_batch(batch: dict, dtype=torch.float64) -> dict:
    """minimace's batch in mace-torch's convention (edge (sender, receiver), vector r_i - r_j + shift)."""
    onehot = torch.nn.functional.one_hot(
        torch.tensor([Z.index(int(z)) for z in batch["atomic_numbers"]]), len(Z)
    ).to(dtype)
    return {
        "positions": batch["positions"].to(dtype).clone(), "node_attrs": onehot, "edge_index": batch["edge_index"].flip(0),
        "shifts": -batch["shifts"].to(dtype), "unit_shifts": -batch["unit_shifts"].to(dtype),
        "cell": batch["cell"].to(dtype).reshape(-1, 3), "batch": batch["batch"], "ptr": batch["ptr"],
        "weight": torch.ones(batch["ptr"].numel() - 1, dtype=dtype),
    }


def run_mace(mm, mbatch, training=False):
    return mm(mbatch, compute_force=True, training=training)


def run_ours(model, batch, training=False):
    return model(batch, compute_forces=True, training=training)


def median_times(fns: dict, repeat: int = 7, warmup: int = 2) -> dict:
    """Median wall and CPU time (s) of each callable: ``{name: (wall, cpu)}``.

    The callables are interleaved (a, b, a, b, ...) so that a noisy machine slows both alike. The CPU time
    (``time.process_time``, all threads of this process) is less sensitive to other processes than the wall
    time; on a quiet machine with 2 threads, wall ≈ CPU / 2 for well-parallelised work.
    """
    for _ in range(warmup):
        for f in fns.values():
            f()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def peak_rss_gib() -> float:
    """Peak resident memory of this process (VmHWM), GiB."""
    return proc_status_gib("VmHWM")


def current_rss_gib() -> float:
    """Current resident memory of this process (VmRSS), GiB."""
    return proc_status_gib("VmRSS")
