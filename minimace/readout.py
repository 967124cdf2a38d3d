"""Readout E_i = Σ_t R_t(h_i^{(t)}), atomic reference energies E0 and scale/shift.

MACE (Batatia et al. 2022, arXiv:2206.07697), Eq. 13:

    E_i = E0_{z_i} + s · Σ_{t=1}^{T} R_t(h_i^{(t)}) + μ,
    R_t(h) = Σ_k W_k h_{k,00}                              t < T   (linear, scalars only)
    R_T(h) = Σ_k W'_k σ(Σ_k' W_{kk'} h_{k',00})            (one hidden layer, "MLP_irreps" channels)

σ is the gate activation normalised to unit second moment (e3nn ``Activation``); s and μ are
``atomic_inter_scale`` and ``atomic_inter_shift`` (mace-torch ``ScaleShiftMACE``; s = 1, μ = 0 gives ``MACE``).
The paper's Eq. 13 is E_i = Σ_t R_t(h_i^{(t)}) alone: E0, s and μ come from the official code's ScaleShiftMACE,
not from Eq. 13.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .one_particle import IrrepsLinear
from .radial import ACTIVATIONS, second_moment_constant
from .so3 import Irreps

__all__ = ["LinearReadout", "NonLinearReadout", "AtomicEnergies", "ScaleShift"]


class LinearReadout(torch.nn.Module):
    """R_t(h) = Σ_k W_k h_{k,00} / sqrt(k): a linear map onto one scalar (mace ``LinearReadoutBlock``)."""

    def __init__(self, irreps_in):
        super().__init__()
        self.linear = IrrepsLinear(irreps_in, "1x0e")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` [n_nodes, irreps_in.dim] -> [n_nodes]."""
        return self.linear(h)[:, 0]


class NonLinearReadout(torch.nn.Module):
    """R_T(h) = linear_2(c·σ(linear_1(h))) (mace ``NonLinearReadoutBlock``).

    Parameters
    ----------
    irreps_in : Irreps
        Irreps of h^{(T)}.
    MLP_irreps : Irreps
        Hidden irreps (scalars only, e.g. ``"16x0e"``).
    gate : str
        Activation name (``"silu"``, ``"tanh"``, ``"abs"``).

    Attributes
    ----------
    act_norm : Tensor
        Scalar c with E[(cσ(z))²] = 1 (quadrature; ``interop`` sets mace-torch's stored value).
    """

    def __init__(self, irreps_in, MLP_irreps, gate: str = "silu"):
        super().__init__()
        MLP_irreps = Irreps(MLP_irreps)
        if any(mi.ir.l != 0 or mi.ir.p != 1 for mi in MLP_irreps):
            raise ValueError(f"MLP_irreps must be even scalars, got {MLP_irreps}")
        self.linear_1 = IrrepsLinear(irreps_in, MLP_irreps)
        self.linear_2 = IrrepsLinear(MLP_irreps, "1x0e")
        self.act = ACTIVATIONS[gate]
        c = second_moment_constant(self.act)
        self.register_buffer("act_norm", torch.tensor(c, dtype=torch.float64))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` [n_nodes, irreps_in.dim] -> [n_nodes]."""
        x = self.linear_1(h)  # [n_nodes, MLP channels]
        x = self.act(x) * self.act_norm.to(x.dtype)
        return self.linear_2(x)[:, 0]


class AtomicEnergies(torch.nn.Module):
    """E0_{z_i}: fixed reference energy of each element (buffer ``atomic_energies`` [num_elements])."""

    def __init__(self, atomic_energies: Sequence[float]):
        super().__init__()
        E0 = torch.as_tensor(list(atomic_energies), dtype=torch.float64)
        self.register_buffer("atomic_energies", E0)

    def forward(self, species: torch.Tensor) -> torch.Tensor:
        """``species`` [n_nodes] -> [n_nodes]."""
        return self.atomic_energies[species]


class ScaleShift(torch.nn.Module):
    """x -> s·x + μ (buffers ``scale`` and ``shift``)."""

    def __init__(self, scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.float64))
        self.register_buffer("shift", torch.tensor(float(shift), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale.to(x.dtype) * x + self.shift.to(x.dtype)
