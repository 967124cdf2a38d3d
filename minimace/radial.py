"""Radial part of the one-particle basis: Bessel functions, polynomial envelope, radial MLP.

MACE (Batatia et al., NeurIPS 2022, arXiv:2206.07697 v2), Appendix A.5: the radial functions
R^{(t)}_{k l1 l2 l3}(r_ij) of Eq. 8 (R^{(1)}_{kl} of Eq. 9 in the first layer) are a small MLP applied to
``n_bessel`` Bessel functions multiplied by a smooth polynomial cutoff envelope,

    j_n(r) = sqrt(2 / r_c) · sin(n π r / r_c) / r,                         n = 1 .. n_bessel
    f_p(r) = 1 − (p+1)(p+2)/2 · x^p + p(p+2) · x^(p+1) − p(p+1)/2 · x^(p+2),   x = r / r_c
    R(r)   = MLP(j(r) · f_p(r))

The envelope (Klicpera et al., DimeNet, Eq. 8) goes from 1 at r = 0 to 0 at r = r_c, where its first
and second derivatives also vanish, so energies and forces are smooth when an atom crosses the cutoff.

The MLP is e3nn's ``FullyConnectedNet``: no biases, weights divided by sqrt(fan_in), and an activation
normalised to unit second moment under a standard normal input ("normalize2mom").

:func:`sympy_bessel` and :func:`sympy_envelope` are the same formulas as sympy expressions: the tests and
notebook 01 prove with ``sympy.integrate`` and ``sympy.diff`` that the j_n are orthonormal with weight r² and
that f_p, f_p', f_p'' vanish at r_c, and check that the torch modules evaluate these expressions.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = [
    "BesselBasis",
    "PolynomialCutoff",
    "RadialMLP",
    "ACTIVATIONS",
    "second_moment_constant",
    "sympy_bessel",
    "sympy_envelope",
]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": torch.nn.functional.silu,
    "tanh": torch.tanh,
    "abs": torch.abs,
}


def second_moment_constant(act: Callable[[torch.Tensor], torch.Tensor], n_points: int = 200) -> float:
    """Constant c with E[(c·act(z))²] = 1 for z ~ N(0, 1), by Gauss–Hermite quadrature.

    Parameters
    ----------
    act : callable
        Elementwise activation on a float64 tensor.
    n_points : int
        Quadrature order (200 gives machine precision for smooth activations).

    Returns
    -------
    float
        ``1 / sqrt(∫ act(z)² N(z) dz)``.
    """
    x, w = np.polynomial.hermite_e.hermegauss(n_points)  # weight exp(-x²/2), Σ w = sqrt(2π)
    f = act(torch.from_numpy(x)).double().numpy()
    second_moment = float(np.sum(w * f**2) / math.sqrt(2 * math.pi))
    return second_moment**-0.5


def sympy_bessel(n: int, r=None, r_max=None):
    """j_n(r) = sqrt(2/r_c) sin(nπr/r_c) / r as a sympy expression (symbols ``r``, ``r_c`` by default).

    Parameters
    ----------
    n : int
        Index n >= 1.
    r, r_max : sympy expressions, optional
        The radius and the cutoff; default positive symbols ``r`` and ``r_c``.
    """
    import sympy as sp

    r = sp.Symbol("r", positive=True) if r is None else r
    r_max = sp.Symbol("r_c", positive=True) if r_max is None else r_max
    return sp.sqrt(2 / r_max) * sp.sin(n * sp.pi * r / r_max) / r


def sympy_envelope(p: int, r=None, r_max=None):
    """f_p(r/r_c) = 1 − (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) − p(p+1)/2 x^(p+2), x = r/r_c, inside the cutoff.

    The polynomial branch only (the module multiplies it by the step r < r_c). Symbols as :func:`sympy_bessel`.
    """
    import sympy as sp

    r = sp.Symbol("r", positive=True) if r is None else r
    r_max = sp.Symbol("r_c", positive=True) if r_max is None else r_max
    x, p = r / r_max, sp.Integer(p)
    return 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)


class BesselBasis(torch.nn.Module):
    """Radial Bessel functions j_n(r) = sqrt(2/r_c) sin(nπr/r_c) / r (MACE App. A.5).

    Parameters
    ----------
    r_max : float
        Cutoff radius r_c (Å).
    num_bessel : int
        Number of basis functions n_bessel.
    """

    def __init__(self, r_max: float, num_bessel: int = 8):
        super().__init__()
        n = torch.arange(1, num_bessel + 1, dtype=torch.float64)
        # buffers are created in float64 (precise after model.double()) and cast to the input dtype when used
        self.register_buffer("frequencies", (math.pi / r_max) * n)
        self.register_buffer("prefactor", torch.tensor(math.sqrt(2.0 / r_max), dtype=torch.float64))
        self.r_max = float(r_max)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """``r`` [n_edges, 1] -> [n_edges, num_bessel]."""
        freq, pref = self.frequencies.to(r.dtype), self.prefactor.to(r.dtype)
        return pref * torch.sin(freq * r) / r  # [n_edges, n_bessel]


class PolynomialCutoff(torch.nn.Module):
    """Polynomial envelope f_p(r/r_c), equal to zero beyond r_c.

    Parameters
    ----------
    r_max : float
        Cutoff radius r_c.
    p : int
        Order; f and its first ``2`` derivatives vanish at r_c.
    """

    def __init__(self, r_max: float, p: int = 5):
        super().__init__()
        self.r_max = float(r_max)
        self.p = int(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """``r`` [...] -> envelope [...]."""
        p, x = float(self.p), r / self.r_max
        envelope = (
            1.0
            - ((p + 1.0) * (p + 2.0) / 2.0) * torch.pow(x, self.p)
            + p * (p + 2.0) * torch.pow(x, self.p + 1)
            - (p * (p + 1.0) / 2.0) * torch.pow(x, self.p + 2)
        )
        return envelope * (r < self.r_max)


class RadialMLP(torch.nn.Module):
    """Bias-free MLP h_{k+1} = c·act(h_k W_k / sqrt(fan_in)), linear last layer (e3nn FullyConnectedNet).

    Parameters
    ----------
    hs : sequence of int
        Widths ``[n_in, hidden..., n_out]``.
    act : str
        Activation name in :data:`ACTIVATIONS`.

    Attributes
    ----------
    weights : ParameterList
        ``weights[k]`` has shape [hs[k], hs[k+1]].
    act_norm : Tensor
        Scalar buffer c (second-moment normalisation of ``act``). Quadrature value by default;
        ``interop`` overwrites it with the value stored in a mace-torch model.
    """

    def __init__(self, hs: Sequence[int], act: str = "silu"):
        super().__init__()
        self.hs = [int(h) for h in hs]
        self.act = ACTIVATIONS[act]
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(h_in, h_out)) for h_in, h_out in zip(self.hs, self.hs[1:])]
        )
        c = second_moment_constant(self.act)
        self.register_buffer("act_norm", torch.tensor(c, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [n_edges, hs[0]] -> [n_edges, hs[-1]]."""
        n_layers = len(self.weights)
        for k, w in enumerate(self.weights):
            x = x @ (w / math.sqrt(w.shape[0]))  # [n_edges, hs[k+1]]
            if k < n_layers - 1:
                x = self.act(x) * self.act_norm.to(x.dtype)
        return x
