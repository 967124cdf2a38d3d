"""Helpers of the benchmarks that need minimace only (``common.py`` needs mace-torch): the benchmark model
with its own random weights, and the test molecule. For machines without mace-torch (a GPU machine, say)."""

from __future__ import annotations

import numpy as np
import torch

from minimace.model import MACE

Z = [1, 6, 7, 8]  # H, C, N, O, as common.Z
E0 = [-13.587, -1029.489, -1484.981, -2041.982]
#: the hyperparameters of common.HPARAMS (docs/performance.md), but for the hidden irreps
HPARAMS = dict(r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3, correlation=3, num_interactions=2,
               MLP_irreps="16x0e", radial_MLP=[64, 64, 64])


def minimace_model(dtype=torch.float64, hidden_irreps: str = "128x0e+128x1o", seed: int = 0, **kwargs) -> MACE:
    """A minimace ``MACE`` with the benchmark hyperparameters and seeded random weights."""
    torch.manual_seed(seed)
    params = {**HPARAMS, **kwargs}
    return MACE(hidden_irreps=hidden_irreps, atomic_numbers=Z, atomic_energies=E0, avg_num_neighbors=20.0,
                **params).to(dtype)


def ethanol():
    """Ethanol, rattled by 0.05 Å (seeded), as ``common.ethanol``."""
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    atoms.positions += 0.05 * np.random.default_rng(0).standard_normal(atoms.positions.shape)
    return atoms


def proc_status_gib(key: str) -> float:
    """A memory line of /proc/self/status (``"VmHWM"`` peak resident, ``"VmRSS"`` current resident), GiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError(f"no {key} in /proc/self/status")
