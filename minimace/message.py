"""Message m_i = Σ_ν Σ_η W_{z_i,kL,η} B^{(ν)}_{i,ηkLM} — mace-torch's ``SymmetricContraction``.

MACE (Batatia et al. 2022, arXiv:2206.07697), Eq. 10–11. With the generalized Clebsch–Gordan tensors
U^{(ν)} = C^{LM}_{η,lm} of ``symmetric.py`` (shape [2L+1, d, ..., d, n_paths], d = (l_max+1)²):

    B^{(ν)}_{i,ηkLM} = Σ_{i_1..i_ν} U^{(ν)}_{M,i_1..i_ν,η} A_{i,k,i_1} ··· A_{i,k,i_ν}          (Eq. 10)
    m_{i,kLM}        = Σ_{ν=1}^{N} Σ_η W^{(ν)}_{z_i,η,k} B^{(ν)}_{i,ηkLM}                       (Eq. 11)

Evaluated the way mace-torch does it (Horner-like recursion, never forming the d^ν product basis per
node and path): with T^{(ν)}_{i,k,M,i_1..i_ν} = Σ_η U^{(ν)}_{M,i_1..i_ν,η} W^{(ν)}_{z_i,η,k},

    c^{(N)}   = Σ_{i_N} T^{(N)}_{..., i_N} A_{i,k,i_N}
    c^{(ν)}   = Σ_{i_ν} (T^{(ν)} + c^{(ν+1)})_{..., i_ν} A_{i,k,i_ν}        ν = N−1, ..., 1
    m_{i,kLM} = c^{(1)}_{i,k,M}

Because A_{i,k} is the same vector in every slot, any coefficient tensor gives the same m as its
symmetric part: the exact, independent U of ``symmetric.py`` and the over-complete U stored by
mace-torch (used as they are by ``interop``) are both accepted.
"""

from __future__ import annotations

import math

import torch

from .so3 import Irrep, Irreps
from .symmetric import coupling_basis

__all__ = ["Contraction", "SymmetricContraction", "element_order"]


def element_order(species: torch.Tensor, num_elements: int) -> tuple:
    """(perm, inverse, counts): node indices sorted by element, the inverse permutation, nodes per element."""
    perm = torch.argsort(species, stable=True)  # [n_nodes]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)
    counts = torch.bincount(species, minlength=num_elements).tolist()
    return perm, inverse, counts


def _index_rows(contraction, incompatible_keys=None) -> None:
    """Recompute the nonzero rows of every U of a :class:`Contraction` (after a state dict replaced them)."""
    for nu in range(1, contraction.correlation + 1):
        contraction._set_rows(nu)


class Contraction(torch.nn.Module):
    """m_{i,kLM} for one output irrep L (Eq. 11), all correlation orders ν = 1..N.

    Parameters
    ----------
    lmax : int
        Largest degree of A (d = (lmax+1)**2 components per channel).
    irrep_out : Irrep
        Output irrep L (with parity).
    correlation : int
        Largest body order N.
    num_elements, num_channels : int
        Number of elements and of channels k.

    Attributes
    ----------
    U_1 .. U_N : buffers
        Coupling tensors [2L+1, d, ..., d, n_paths_ν].
    weights : ParameterList
        ``weights[ν-1]`` has shape [num_elements, n_paths_ν, num_channels] (W^{(ν)}_{z,η,k}).
    """

    def __init__(self, lmax: int, irrep_out: Irrep, correlation: int, num_elements: int, num_channels: int):
        super().__init__()
        self.irrep_out, self.correlation = Irrep.parse(irrep_out), int(correlation)
        self.d = (lmax + 1) ** 2
        self.weights = torch.nn.ParameterList()
        for nu in range(1, self.correlation + 1):
            U = coupling_basis(lmax, nu, self.irrep_out.l, self.irrep_out.p, dtype=torch.float64)
            self.register_buffer(f"U_{nu}", U)  # float64 until the model is cast; cast when used
            self.register_buffer(f"rows_{nu}", None, persistent=False)  # set by _set_rows
            self.register_buffer(f"U_rows_{nu}", None, persistent=False)
            self._set_rows(nu)
            n_paths = U.shape[-1]
            self.weights.append(torch.nn.Parameter(torch.randn(num_elements, n_paths, num_channels) / max(n_paths, 1)))
        # the nonzero rows of U follow U when a state dict (e.g. a checkpoint) replaces it
        self.register_load_state_dict_post_hook(_index_rows)

    def U(self, nu: int) -> torch.Tensor:
        return getattr(self, f"U_{nu}")

    def _set_rows(self, nu: int) -> None:
        """``rows_ν``: indices of the nonzero rows (M, i_1..i_ν) of U^{(ν)} flattened to [M·d^ν, P];
        ``U_rows_ν``: those rows [n_rows, P]."""
        U = self.U(nu)
        U = U.reshape(math.prod(U.shape[:-1]), U.shape[-1])  # [M·d^ν, P]
        rows = U.ne(0).any(dim=1).nonzero().squeeze(1)
        setattr(self, f"rows_{nu}", rows)
        setattr(self, f"U_rows_{nu}", U[rows])

    def set_U(self, nu: int, U: torch.Tensor) -> None:
        """Replace U^{(ν)} (e.g. by mace-torch's over-complete tensor) and resize W^{(ν)} to match."""
        old = self.U(nu)
        setattr(self, f"U_{nu}", U.to(old))
        self._set_rows(nu)
        E, _, k = self.weights[nu - 1].shape
        self.weights[nu - 1] = torch.nn.Parameter(old.new_zeros(E, U.shape[-1], k))

    def _T(self, nu: int, elements: list) -> torch.Tensor:
        """T^{(ν)} = U^{(ν)} · W^{(ν)} of the given elements: [len(elements), k, (2L+1)·d^(ν-1), d].

        U is sparse (selection rules of the Clebsch–Gordan coefficients: for l_max = 3 about 10 % of its rows
        (M, i_1..i_ν) are nonzero), so only its nonzero rows are multiplied; the other rows of T are zero.
        """
        W = self.weights[nu - 1][elements]  # [E', P, k]
        rows, U_rows = getattr(self, f"rows_{nu}"), getattr(self, f"U_rows_{nu}")  # nonzero rows of U: [n_rows, P]
        T = W.new_zeros(W.shape[0], W.shape[2], math.prod(self.U(nu).shape[:-1]))  # [E', k, M·d^ν]
        T[:, :, rows] = torch.einsum("qp,epk->ekq", U_rows.to(W.dtype), W)
        return T.reshape(W.shape[0], W.shape[2], -1, self.d)

    def forward(self, A: torch.Tensor, species: torch.Tensor, element_order) -> torch.Tensor:
        """``A`` [n_nodes, k, d], ``species`` [n_nodes] -> m [n_nodes, k·(2L+1)] (channel-major).

        ``element_order`` = (perm, inverse, counts): nodes sorted by element, the inverse permutation and
        the number of nodes per element (a list of int), so that every order is contracted element by
        element with that element's T (never gathering a per-node copy [n_nodes, k, M·d^(ν-1), d] of T).
        """
        perm, inverse, counts = element_order
        n, k, d = A.shape
        present = [e for e, n_e in enumerate(counts) if n_e > 0]
        T = [self._T(nu, present) for nu in range(1, self.correlation + 1)]  # T[ν-1]: [E', k, M·d^(ν-1), d]
        parts = []
        A_sorted = torch.split(A[perm], [counts[e] for e in present])
        for e, A_e in enumerate(A_sorted):  # nodes of the e-th element present: [n_e, k, d]
            c = torch.einsum("kqi,nki->nkq", T[-1][e], A_e)  # c^(N): [n_e, k, M·d^(N-1)]
            for nu in range(self.correlation - 1, 0, -1):
                c = c.reshape(A_e.shape[0], k, T[nu - 1].shape[2], d)  # [n_e, k, M·d^(ν-1), d]
                # c^(ν) = Σ_i (T^(ν) + c^(ν+1))_{..., i} A_i (a product and a sum: faster than a batched
                # matrix-vector product of n_e·k tiny matrices)
                c = ((T[nu - 1][e] + c) * A_e.unsqueeze(2)).sum(dim=-1)  # [n_e, k, M·d^(ν-1)]
            parts.append(c)  # [n_e, k, M]
        c = torch.cat(parts, dim=0)[inverse]  # [n_nodes, k, M]
        return c.reshape(A.shape[0], A.shape[1] * self.irrep_out.dim)  # [n_nodes, k·(2L+1)]


class SymmetricContraction(torch.nn.Module):
    """Messages m_i for every irrep of ``irreps_out`` (concatenated, mul_ir layout).

    Parameters
    ----------
    irreps_in : Irreps
        Irreps of A: ``k x 0e + k x 1o + ... + k x (lmax)`` (natural parity, equal multiplicities).
    irreps_out : Irreps
        Irreps of m (each with multiplicity k).
    correlation : int
        Body order N.
    num_elements : int
        Number of chemical elements.
    """

    def __init__(self, irreps_in, irreps_out, correlation: int, num_elements: int):
        super().__init__()
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        k = self.irreps_in[0].mul
        lmax = self.irreps_in.lmax
        if self.irreps_in != Irreps([(k, Irrep(l, (-1) ** l)) for l in range(lmax + 1)]):
            raise ValueError(f"A must have irreps k x 0e + k x 1o + ... (natural parity), got {self.irreps_in}")
        if any(mi.mul != k for mi in self.irreps_out):
            raise ValueError(f"every output irrep needs {k} channels, got {self.irreps_out}")
        self.num_channels, self.lmax = k, lmax
        self.contractions = torch.nn.ModuleList(
            [Contraction(lmax, mi.ir, correlation, num_elements, k) for mi in self.irreps_out]
        )

    def forward(self, A: torch.Tensor, species: torch.Tensor, element_order) -> torch.Tensor:
        """``A`` [n_nodes, irreps_in.dim] (flat) -> m [n_nodes, irreps_out.dim]."""
        n, k = A.shape[0], self.num_channels
        blocks = [A[:, s].reshape(n, k, mi.ir.dim) for s, mi in zip(self.irreps_in.slices(), self.irreps_in)]
        A = torch.cat(blocks, dim=-1)  # [n_nodes, k, (lmax+1)**2]
        return torch.cat([c(A, species, element_order) for c in self.contractions], dim=-1)
