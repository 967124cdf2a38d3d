"""One-particle basis φ_{kηlm}(r_ij, z_j) = R_{kl}(r_ij) · Y_l^m(r̂_ij) · (chemical embedding of z_j).

MACE (Batatia et al., NeurIPS 2022, arXiv:2206.07697 v2): φ is the summand of the first-layer atomic basis
Eq. 9, A^{(1)}_{i,klm} = Σ_j R^{(1)}_{kl}(r_ij) Y_l^m(r̂_ij) W_{k z_j}; in later layers (Eq. 8) the neighbour's
features h_j^{(t)} take the place of W_{k z_j}. Its pieces:

- Y_l^m(r̂_ij): real spherical harmonics in e3nn's basis, component normalisation, of the edge vector
  r_ij = r_j − r_i + shift (from the centre i to its neighbour j);
- the radial features j_n(r_ij) · f_p(r_ij) (``radial.py``, App. A.5) that feed the per-layer radial MLP R_{kl};
- the chemical embedding: the one-hot vector of the element z_j mapped linearly to k channels,
  h_j^{(0)} = W_{z_j, k} / sqrt(n_elements) (e3nn's ``Linear`` of "n_elements x 0e" into "k x 0e").

This module also holds :class:`IrrepsLinear`, the equivariant linear map that mixes channels of the same
irrep (e3nn ``o3.Linear``): it is the embedding here and reappears in every later stage.
"""

from __future__ import annotations

import math

import torch

from .radial import BesselBasis, PolynomialCutoff
from .so3 import Irreps, spherical_harmonics

__all__ = ["IrrepsLinear", "ChemicalEmbedding", "EdgeEmbedding"]


class IrrepsLinear(torch.nn.Module):
    """Equivariant linear map y_{w,LM} = Σ_u W_{uw} x_{u,LM} / sqrt(fan_in), one W per pair of equal irreps.

    Parameters
    ----------
    irreps_in, irreps_out : str or Irreps
        Input and output irreps; every input block connects to every output block of the same irrep.

    Attributes
    ----------
    weight : Parameter
        Flat weights, e3nn layout: for each instruction ``(i_in, i_out)`` in order, a ``[mul_in, mul_out]``
        block flattened row-major. ``fan_in`` of an output block is the sum of ``mul_in`` over its inputs.
    instructions : list of (int, int, float)
        ``(i_in, i_out, 1/sqrt(fan_in))``.
    """

    def __init__(self, irreps_in, irreps_out):
        super().__init__()
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        pairs = [
            (i, o)
            for i, mi in enumerate(self.irreps_in)
            for o, mo in enumerate(self.irreps_out)
            if mi.ir == mo.ir and mi.mul > 0 and mo.mul > 0
        ]
        fan_in = {o: sum(self.irreps_in[i].mul for i, oo in pairs if oo == o) for _, o in pairs}
        self.instructions = [(i, o, fan_in[o] ** -0.5) for i, o in pairs]
        numel = sum(self.irreps_in[i].mul * self.irreps_out[o].mul for i, o in pairs)
        self.weight = torch.nn.Parameter(torch.randn(numel))

    def weight_views(self):
        """The ``[mul_in, mul_out]`` weight block of each instruction."""
        views, start = [], 0
        for i, o, _ in self.instructions:
            shape = (self.irreps_in[i].mul, self.irreps_out[o].mul)
            views.append(self.weight[start : start + shape[0] * shape[1]].view(shape))
            start += shape[0] * shape[1]
        return views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [..., irreps_in.dim] -> [..., irreps_out.dim]."""
        lead = x.shape[:-1]
        x = x.reshape(-1, self.irreps_in.dim)  # [n, dim_in]
        sl_in = self.irreps_in.slices()
        blocks = [None] * len(self.irreps_out)
        for (i, o, alpha), w in zip(self.instructions, self.weight_views()):
            mi = self.irreps_in[i]
            xi = x[:, sl_in[i]].reshape(-1, mi.mul, mi.ir.dim)  # [n, mul_in, 2l+1]
            y = torch.einsum("nui,uw->nwi", xi, w) * alpha  # [n, mul_out, 2l+1]
            blocks[o] = y if blocks[o] is None else blocks[o] + y
        out = [
            b.reshape(x.shape[0], mo.dim) if b is not None else x.new_zeros(x.shape[0], mo.dim)
            for b, mo in zip(blocks, self.irreps_out)
        ]
        return torch.cat(out, dim=-1).reshape(*lead, self.irreps_out.dim)


class ChemicalEmbedding(torch.nn.Module):
    """h_i^{(0)} = W_{z_i, k} / sqrt(n_elements): the linear embedding of the one-hot element vector.

    Parameters
    ----------
    num_elements : int
        Number of chemical elements (length of the one-hot vector).
    num_channels : int
        Number k of scalar channels.

    Attributes
    ----------
    weight : Parameter
        [num_elements, num_channels] (same numbers as e3nn ``Linear("Nx0e", "kx0e").weight``).
    """

    def __init__(self, num_elements: int, num_channels: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(num_elements, num_channels))

    def forward(self, species: torch.Tensor) -> torch.Tensor:
        """``species`` [n_nodes] (element index 0..num_elements-1) -> [n_nodes, num_channels]."""
        return self.weight[species] / math.sqrt(self.weight.shape[0])  # [n_nodes, k]


class EdgeEmbedding(torch.nn.Module):
    """Angular and radial features of each edge: Y_lm(r̂_ij) and j_n(r_ij) · f_p(r_ij).

    Parameters
    ----------
    r_max : float
        Cutoff radius r_c (Å).
    num_bessel : int
        Number of Bessel functions.
    num_polynomial_cutoff : int
        Order p of the envelope.
    max_ell : int
        Largest degree l of the spherical harmonics.
    """

    def __init__(self, r_max: float, num_bessel: int, num_polynomial_cutoff: int, max_ell: int):
        super().__init__()
        self.max_ell = int(max_ell)
        self.bessel = BesselBasis(r_max, num_bessel)
        self.cutoff = PolynomialCutoff(r_max, num_polynomial_cutoff)

    def forward(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``vectors`` r_ij [n_edges, 3] -> (Y [n_edges, (max_ell+1)**2], radial [n_edges, num_bessel])."""
        lengths = torch.linalg.norm(vectors, dim=-1, keepdim=True)  # [n_edges, 1]
        Y = spherical_harmonics(self.max_ell, vectors, normalize=True)  # [n_edges, (lmax+1)**2]
        radial = self.bessel(lengths) * self.cutoff(lengths)  # [n_edges, n_bessel]
        return Y, radial
