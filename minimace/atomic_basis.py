"""Atomic basis A_{i,klm} = Σ_{j∈N(i)} φ_{klm}(r_ij, z_j) — MACE's interaction block.

MACE (Batatia et al. 2022, arXiv:2206.07697), Eq. 8–9. At layer t the neighbour's features h_j^{(t)}
play the role of the chemical embedding:

    A^{(t)}_{i,kl3m3} = Σ_k̃ W_{kk̃l3} / n̄ · Σ_{j∈N(i)} Σ_{l1m1,l2m2} C^{l3m3}_{l1m1,l2m2} R^{(t)}_{k̃ l1l2l3}(r_ij)
                        Y^{m1}_{l1}(r̂_ij) · (Σ_k' W_{k̃k'} h^{(t)}_{j,k'l2m2})

Line by line (``AtomicBasis.forward``): ``linear_up`` (W_{k̃k'}), the radial MLP R(r_ij) giving one weight
per channel and coupling path, the "uvu" tensor product with Clebsch–Gordan coefficients C
(:class:`ConvTensorProduct`), the sum over neighbours divided by ``avg_num_neighbors`` n̄, and ``linear``
(W_{kk̃l3}). In the first layer mace-torch also multiplies A by element-dependent weights
(:class:`ElementLinear`, its ``skip_tp``); later layers put that map on h^{(t)} instead (``update.py``).

Edge convention (docs/ARCHITECTURE.md): ``edge_index[0]`` is the centre i (the receiver),
``edge_index[1]`` the neighbour j, and Y is evaluated on r_ij = r_j − r_i + shift.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .one_particle import IrrepsLinear
from .radial import RadialMLP
from .so3 import Irrep, Irreps, MulIrrep, wigner_3j

__all__ = ["ElementLinear", "ConvTensorProduct", "AtomicBasis", "irreps_sort_key", "scatter_sum"]


def irreps_sort_key(ir: Irrep) -> tuple:
    """e3nn's order of irreps: by degree l, then odd before even (as mace-torch sorts tensor-product outputs)."""
    return (ir.l, ir.p)


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """out[n] = Σ_{e : index[e] = n} src[e] along the first dimension."""
    out = src.new_zeros((dim_size,) + tuple(src.shape[1:]))
    return out.index_add(0, index, src)


class ElementLinear(torch.nn.Module):
    """Element-dependent linear map y_{i,wLM} = Σ_u W_{u z_i w} x_{i,uLM} / sqrt(fan_in · n_elements).

    This is e3nn's ``FullyConnectedTensorProduct(irreps_in, "n_elements x 0e", irreps_out)`` with a one-hot
    second input (mace-torch's ``skip_tp``), the W_{z_i} of the paper's update (Eq. 12).

    Attributes
    ----------
    weight : Parameter
        Flat weights, e3nn layout: for each instruction a ``[mul_in, n_elements, mul_out]`` block.
    """

    def __init__(self, irreps_in, num_elements: int, irreps_out):
        super().__init__()
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        self.num_elements = int(num_elements)
        pairs = [
            (i, o)
            for i, mi in enumerate(self.irreps_in)
            for o, mo in enumerate(self.irreps_out)
            if mi.ir == mo.ir and mi.mul > 0 and mo.mul > 0
        ]
        fan_in = {o: sum(self.irreps_in[i].mul * num_elements for i, oo in pairs if oo == o) for _, o in pairs}
        self.instructions = [(i, o, fan_in[o] ** -0.5) for i, o in pairs]
        numel = sum(self.irreps_in[i].mul * num_elements * self.irreps_out[o].mul for i, o in pairs)
        self.weight = torch.nn.Parameter(torch.randn(numel))

    def weight_views(self):
        """The ``[mul_in, n_elements, mul_out]`` weight block of each instruction."""
        views, start = [], 0
        for i, o, _ in self.instructions:
            shape = (self.irreps_in[i].mul, self.num_elements, self.irreps_out[o].mul)
            views.append(self.weight[start : start + math.prod(shape)].view(shape))
            start += math.prod(shape)
        return views

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """``x`` [n, irreps_in.dim], ``species`` [n] -> [n, irreps_out.dim]."""
        n = x.shape[0]
        onehot = torch.nn.functional.one_hot(species, self.num_elements).to(x.dtype)  # [n, n_elements]
        sl_in = self.irreps_in.slices()
        blocks = [None] * len(self.irreps_out)
        for (i, o, alpha), w in zip(self.instructions, self.weight_views()):
            mi = self.irreps_in[i]
            xi = x[:, sl_in[i]].reshape(n, mi.mul, mi.ir.dim)  # [n, u, 2l+1]
            xv = torch.einsum("nui,nv->nuvi", xi, onehot).reshape(n, mi.mul * self.num_elements, mi.ir.dim)
            y = torch.einsum("nqi,qw->nwi", xv, w.reshape(-1, w.shape[-1])) * alpha  # [n, w, 2l+1]
            blocks[o] = y if blocks[o] is None else blocks[o] + y
        out = [b.reshape(n, mo.dim) if b is not None else x.new_zeros(n, mo.dim) for b, mo in zip(blocks, self.irreps_out)]
        return torch.cat(out, dim=-1)


class ConvTensorProduct(torch.nn.Module):
    """Per-edge "uvu" tensor product x_{u,l1} ⊗ Y_{l2} -> l3 with one radial weight per channel and path.

    out_{e,u,m3} = sqrt(2l3+1) · w_{e,u} Σ_{m1,m2} C^{l3 m3}_{l1 m1, l2 m2} x_{e,u,m1} Y_{e,m2}

    Paths ``(l1, l2, l3)`` keep only outputs in ``target_irreps``; they are ordered as mace-torch orders
    them (``tp_out_irreps_with_instructions``: sorted by output irrep, stable), which fixes the layout of
    ``irreps_out`` and of the per-edge weights (``weight_numel`` columns, ``mul1`` per path).

    Attributes
    ----------
    paths : list of (int, int, Irrep)
        ``(i_in1, l_sh, ir_out)`` in output order.
    irreps_out : Irreps
        One block per path (not simplified).
    """

    def __init__(self, irreps_in1, max_ell: int, target_irreps):
        super().__init__()
        self.irreps_in1 = Irreps(irreps_in1)
        self.sh_irreps = Irreps.spherical_harmonics(max_ell)
        target = Irreps(target_irreps)
        paths = []
        for i, (mul, ir_in) in enumerate(self.irreps_in1):
            for (_, ir_sh) in self.sh_irreps:
                for ir_out in ir_in * ir_sh:
                    if ir_out in target:
                        paths.append((i, ir_sh.l, ir_out))
        order = sorted(range(len(paths)), key=lambda k: irreps_sort_key(paths[k][2]))
        self.paths = [paths[k] for k in order]
        self.irreps_out = Irreps([MulIrrep(self.irreps_in1[i].mul, ir) for i, _, ir in self.paths])
        self.weight_numel = sum(self.irreps_in1[i].mul for i, _, _ in self.paths)
        for i, l2, ir in self.paths:
            name = f"cg_{self.irreps_in1[i].ir.l}_{l2}_{ir.l}"
            if not hasattr(self, name):
                C = wigner_3j(self.irreps_in1[i].ir.l, l2, ir.l, dtype=torch.float64)
                self.register_buffer(name, C)  # [2l1+1, 2l2+1, 2l3+1] (float64, cast when used)

    def forward(self, x: torch.Tensor, Y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``x`` [n_edges, irreps_in1.dim], ``Y`` [n_edges, (max_ell+1)**2], ``weights`` [n_edges, weight_numel]."""
        n_edges = x.shape[0]
        sl_in = self.irreps_in1.slices()
        out, w_start = [], 0
        for i, l2, ir in self.paths:
            mul, ir1 = self.irreps_in1[i]
            C = getattr(self, f"cg_{ir1.l}_{l2}_{ir.l}").to(x.dtype)  # [2l1+1, 2l2+1, 2l3+1]
            x1 = x[:, sl_in[i]].reshape(n_edges, mul, ir1.dim)  # [n_edges, u, 2l1+1]
            Yl = Y[:, l2 * l2 : (l2 + 1) ** 2]  # [n_edges, 2l2+1]
            YC = torch.einsum("ej,ijk->eik", Yl, C)  # [n_edges, 2l1+1, 2l3+1]
            w = weights[:, w_start : w_start + mul]  # [n_edges, u]
            w_start += mul
            y = torch.einsum("eui,eik->euk", x1, YC) * (w * math.sqrt(ir.dim)).unsqueeze(-1)  # [n_edges, u, 2l3+1]
            out.append(y.reshape(n_edges, mul * ir.dim))
        return torch.cat(out, dim=-1)  # [n_edges, irreps_out.dim]


class AtomicBasis(torch.nn.Module):
    """A_i of one layer (mace-torch ``RealAgnosticInteractionBlock`` / ``...ResidualInteractionBlock``).

    Parameters
    ----------
    node_irreps : Irreps
        Irreps of h^{(t)} (``"k x 0e"`` in the first layer, ``hidden_irreps`` later).
    max_ell : int
        Largest degree of the spherical harmonics.
    target_irreps : Irreps
        Irreps of A (``k x 0e + k x 1o + ...`` up to max_ell).
    num_bessel : int
        Number of radial features entering the MLP.
    radial_MLP : sequence of int
        Hidden widths of the radial MLP.
    avg_num_neighbors : float
        n̄, divides the sum over neighbours.
    num_elements : int
        Number of elements (for the first layer's element-dependent map).
    first_layer : bool
        Apply :class:`ElementLinear` to A (mace-torch's first interaction block does).

    Attributes
    ----------
    linear_up, radial_mlp, conv_tp, linear, element_linear (first layer only)
        Correspond to mace-torch's ``linear_up``, ``conv_tp_weights``, ``conv_tp``, ``linear``, ``skip_tp``.
    """

    def __init__(
        self,
        node_irreps,
        max_ell: int,
        target_irreps,
        num_bessel: int,
        radial_MLP: Sequence[int],
        avg_num_neighbors: float,
        num_elements: int,
        first_layer: bool,
    ):
        super().__init__()
        self.node_irreps, self.target_irreps = Irreps(node_irreps), Irreps(target_irreps)
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.linear_up = IrrepsLinear(self.node_irreps, self.node_irreps)
        self.conv_tp = ConvTensorProduct(self.node_irreps, max_ell, self.target_irreps)
        self.radial_mlp = RadialMLP([num_bessel, *radial_MLP, self.conv_tp.weight_numel])
        self.linear = IrrepsLinear(self.conv_tp.irreps_out, self.target_irreps)
        self.first_layer = bool(first_layer)
        if self.first_layer:
            self.element_linear = ElementLinear(self.target_irreps, num_elements, self.target_irreps)

    def forward(
        self,
        h: torch.Tensor,
        species: torch.Tensor,
        Y: torch.Tensor,
        radial: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> torch.Tensor:
        """Return A [n_nodes, target_irreps.dim] (flat mul_ir layout).

        ``h`` [n_nodes, node_irreps.dim], ``species`` [n_nodes], ``Y`` [n_edges, (max_ell+1)**2],
        ``radial`` [n_edges, num_bessel], ``edge_index`` [2, n_edges] (centre, neighbour).
        """
        centre, neighbour = edge_index[0], edge_index[1]
        h = self.linear_up(h)  # [n_nodes, node_irreps.dim]
        R = self.radial_mlp(radial)  # [n_edges, weight_numel]
        phi_h = self.conv_tp(h[neighbour], Y, R)  # [n_edges, conv_tp.irreps_out.dim]
        A = scatter_sum(phi_h, centre, h.shape[0])  # [n_nodes, conv_tp.irreps_out.dim]
        A = self.linear(A) / self.avg_num_neighbors  # [n_nodes, target_irreps.dim]
        if self.first_layer:
            A = self.element_linear(A, species)
        return A
