"""Atomic basis A_{i,klm} = Σ_{j∈N(i)} φ_{klm}(r_ij, z_j) — MACE's interaction block.

MACE (Batatia et al., NeurIPS 2022, arXiv:2206.07697 v2), Eq. 8 (the A-features of layer t) and Eq. 9
(the first layer, where h_j^{(0)} is the chemical embedding W_{k z_j}). At layer t the neighbour's features
h_j^{(t)} play the role of the chemical embedding; as computed here,

    A^{(t)}_{i,kl3m3} = Σ_k̃ W_{kk̃l3} / n̄ · Σ_{j∈N(i)} Σ_{l1m1,l2m2} C^{l3m3}_{l1m1,l2m2} R^{(t)}_{k̃ l1l2l3}(r_ij)
                        Y^{m1}_{l1}(r̂_ij) · (Σ_k' W_{k̃k'} h^{(t)}_{j,k'l2m2})

The paper's Eq. 8 has the channel mixing W only on h_j, before the sum, and no linear map after it; this
code follows mace-torch, which applies ``linear_up`` before the sum and ``linear`` (W_{kk̃l3}/n̄) after it.

Line by line (``AtomicBasis.forward``): ``linear_up`` (W_{k̃k'}), the radial MLP R(r_ij) giving one weight
per channel and coupling path, the "uvu" tensor product with Clebsch–Gordan coefficients C
(:class:`ConvTensorProduct`), the sum over neighbours divided by ``avg_num_neighbors`` n̄, and ``linear``
(W_{kk̃l3}). In the first layer mace-torch also multiplies A by element-dependent weights
(:class:`ElementLinear`, its ``skip_tp``); later layers put that map on h^{(t)} instead (``update.py``).

``ConvTensorProduct.forward`` is the per-edge tensor product as the equation reads; the model sums it over
neighbours with :meth:`ConvTensorProduct.neighbour_sum`, the same sums in a cheaper order (docs/performance.md),
and can process the edges in chunks under gradient checkpointing (``chunk_size``) to bound memory.

Edge convention (docs/ARCHITECTURE.md): ``edge_index[0]`` is the centre i (the receiver),
``edge_index[1]`` the neighbour j, and Y is evaluated on r_ij = r_j − r_i + shift.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch.utils.checkpoint import checkpoint

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
        self.path_muls = [self.irreps_in1[i].mul for i, _, _ in self.paths]

    def cg_all(self, dtype: torch.dtype, device=None) -> torch.Tensor:
        """sqrt(2l3+1)·C of every path at its Y block, side by side: [(max_ell+1)**2, Σ_paths (2l1+1)(2l3+1)]."""
        blocks = []
        for i, l2, ir in self.paths:
            C = getattr(self, f"cg_{self.irreps_in1[i].ir.l}_{l2}_{ir.l}") * math.sqrt(ir.dim)
            block = C.new_zeros(C.shape[0], self.sh_irreps.dim, ir.dim)  # [2l1+1, (max_ell+1)**2, 2l3+1]
            block[:, l2 * l2 : (l2 + 1) ** 2] = C
            blocks.append(block.transpose(0, 1).reshape(self.sh_irreps.dim, -1))
        if not blocks:
            return torch.zeros(self.sh_irreps.dim, 0, dtype=dtype, device=device)
        return torch.cat(blocks, dim=1).to(dtype=dtype, device=device)

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

    def neighbour_sum(
        self, h: torch.Tensor, Y: torch.Tensor, weights: torch.Tensor, edge_index: torch.Tensor
    ) -> torch.Tensor:
        """Σ_{j∈N(i)} forward(h_j, Y_ij, w_ij): the same numbers as
        ``scatter_sum(self(h[neighbour], Y, weights), centre, n_nodes)``, computed faster and in less memory.

        The sums are only reordered (tested to ~1e-15 in float64, tests/test_performance_equivalence.py):

        1. each input block of ``h`` is gathered once, ``h_{j,u,m1}`` [n_edges, u, 2l1+1] (no per-path slices
           of an [n_edges, irreps_in1.dim] tensor, whose backward would allocate it again for every path);
        2. Y is contracted with the CG of every path in one matmul, ``(YC)_{e,m1,m3} = Σ_m2 Y_{e,m2} C_{m1 m2 m3}``;
        3. the radial weight multiplies the input, ``(w h)_{e,u,m1}``, before the (larger) product with YC;
        4. each path is summed over neighbours as soon as it is formed, so the
           [n_edges, irreps_out.dim] tensor of ``forward`` never exists.

        Parameters
        ----------
        h : Tensor
            Node features [n_nodes, irreps_in1.dim].
        Y : Tensor
            [n_edges, (max_ell+1)**2].
        weights : Tensor
            [n_edges, weight_numel].
        edge_index : Tensor
            [2, n_edges] (centre, neighbour).

        Returns
        -------
        Tensor
            [n_nodes, irreps_out.dim].
        """
        centre, neighbour = edge_index[0], edge_index[1]
        n_nodes, n_edges = h.shape[0], Y.shape[0]
        sizes = [self.irreps_in1[i].ir.dim * ir.dim for i, _, ir in self.paths]
        YC = (Y @ self.cg_all(Y.dtype, Y.device)).split(sizes, dim=1)  # per path [n_edges, (2l1+1)(2l3+1)]
        w = weights.split(self.path_muls, dim=1)  # per path [n_edges, u]
        blocks = {}
        for s, (i, mi) in zip(self.irreps_in1.slices(), enumerate(self.irreps_in1)):
            if any(p[0] == i for p in self.paths):
                blocks[i] = h[:, s].reshape(n_nodes, mi.mul, mi.ir.dim)[neighbour]  # [n_edges, u, 2l1+1]
        out = []
        for (i, _, ir), YC_p, w_p in zip(self.paths, YC, w):
            x = blocks[i] * w_p.unsqueeze(-1)  # [n_edges, u, 2l1+1]
            YC_p = YC_p.reshape(n_edges, x.shape[-1], ir.dim)  # [n_edges, 2l1+1, 2l3+1]
            y = x * YC_p if x.shape[-1] == 1 else torch.bmm(x, YC_p)  # [n_edges, u, 2l3+1]
            out.append(scatter_sum(y, centre, n_nodes).reshape(n_nodes, -1))  # [n_nodes, u·(2l3+1)]
        if not out:
            return h.new_zeros(n_nodes, 0)
        return torch.cat(out, dim=-1)  # [n_nodes, irreps_out.dim]


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
        chunk_size: Optional[int] = None,
    ) -> torch.Tensor:
        """Return A [n_nodes, target_irreps.dim] (flat mul_ir layout).

        ``h`` [n_nodes, node_irreps.dim], ``species`` [n_nodes], ``Y`` [n_edges, (max_ell+1)**2],
        ``radial`` [n_edges, num_bessel], ``edge_index`` [2, n_edges] (centre, neighbour).
        ``chunk_size``: if set, the edges are processed ``chunk_size`` at a time under gradient
        checkpointing (same numbers; per-edge memory bounded by the chunk, at the price of recomputing
        the per-edge work once more in the backward pass).
        """
        h = self.linear_up(h)  # [n_nodes, node_irreps.dim]
        n_edges = Y.shape[0]
        if chunk_size is None or n_edges <= chunk_size:
            A = self.neighbour_sum(h, Y, radial, edge_index)  # [n_nodes, conv_tp.irreps_out.dim]
        else:
            A = 0
            for start in range(0, n_edges, chunk_size):
                c = slice(start, start + chunk_size)
                A = A + checkpoint(self.neighbour_sum, h, Y[c], radial[c], edge_index[:, c], use_reentrant=False)
        A = self.linear(A) / self.avg_num_neighbors  # [n_nodes, target_irreps.dim]
        if self.first_layer:
            A = self.element_linear(A, species)
        return A

    def neighbour_sum(self, h, Y, radial, edge_index) -> torch.Tensor:
        """Σ_{j∈N(i)} R(r_ij) Y(r̂_ij) ⊗ h_j [n_nodes, conv_tp.irreps_out.dim] (before ``linear`` and 1/n̄).

        Equal to ``scatter_sum(self.conv_tp(h[neighbour], Y, self.radial_mlp(radial)), centre, n_nodes)``,
        the per-edge form of Eqs. 8–9; see :meth:`ConvTensorProduct.neighbour_sum`.
        """
        R = self.radial_mlp(radial)  # [n_edges, weight_numel]
        return self.conv_tp.neighbour_sum(h, Y, R, edge_index)
