"""Message m_i = Σ_ν Σ_η W_{z_i,kL,η} B^{(ν)}_{i,ηkLM} — mace-torch's ``SymmetricContraction``.

MACE (Batatia et al. 2022, arXiv:2206.07697), Eq. 10–11. With the generalized Clebsch–Gordan tensors
U^{(ν)} = C^{LM}_{η,lm} of ``symmetric.py`` (shape [2L+1, d, ..., d, n_paths], d = (l_max+1)²):

    B^{(ν)}_{i,ηkLM} = Σ_{i_1..i_ν} U^{(ν)}_{M,i_1..i_ν,η} A_{i,k,i_1} ··· A_{i,k,i_ν}          (Eq. 10)
    m_{i,kLM}        = Σ_{ν=1}^{N} Σ_η W^{(ν)}_{z_i,η,k} B^{(ν)}_{i,ηkLM}                       (Eq. 11)

Computed as written, with the product basis A_{i_1} ··· A_{i_ν} formed once per distinct entry:

* the product does not depend on the order of its factors, so Eq. 10 runs over the sorted tuples
  s = (i_1 <= ... <= i_ν) only, with U summed over the orderings of each tuple,
  Ū^{(ν)}_{M,s,η} = Σ_{orderings (i) of s} U^{(ν)}_{M,(i),η} (``_fold``);
* of those, only the tuples that some Ū couples to are kept (selection rules of the Clebsch–Gordan
  coefficients: for l_max = 3, ν = 3 and L = 1, 278 of the 816 sorted tuples, out of d^ν = 4096 entries).

Eq. 10 is then one matrix product per ν, ``[(2L+1)·n_paths, S_ν] @ [S_ν, n_nodes·k]``, and Eq. 11 a sum over
paths weighted by the element of the receiving atom. Because A_{i,k} is the same vector in every slot, any
coefficient tensor gives the same m as its symmetric part: the exact, independent U of ``symmetric.py`` and
the over-complete U stored by mace-torch (used as they are by ``interop``) are both accepted.

mace-torch evaluates the same sums in another order (U contracted with W first, T^{(ν)} = U^{(ν)}·W^{(ν)},
then with A one index at a time, a Horner-like recursion); ``tests/test_performance_equivalence.py`` checks
this module against that form, and ``tests/test_message.py`` against ``symmetric.b_functions``.
"""

from __future__ import annotations

import torch

from .so3 import Irrep, Irreps
from .symmetric import coupling_basis

__all__ = ["Contraction", "SymmetricContraction"]


def _fold_all(contraction, incompatible_keys=None) -> None:
    """Recompute the folded U of every order of a :class:`Contraction` (after a state dict replaced U)."""
    for nu in range(1, contraction.correlation + 1):
        contraction._fold(nu)


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
        Coupling tensors [2L+1, d, ..., d, n_paths_ν] (saved in the state dict).
    monomials_1 .. monomials_N, U_sym_1 .. U_sym_N : buffers, not saved
        The sorted index tuples s of the product basis that U couples to, [S_ν, ν], and U summed over the
        orderings of each, [(2L+1)·n_paths_ν, S_ν]; recomputed from U by :meth:`set_U` and ``load_state_dict``.
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
            self.register_buffer(f"monomials_{nu}", None, persistent=False)  # set by _fold
            self.register_buffer(f"U_sym_{nu}", None, persistent=False)
            self._fold(nu)
            n_paths = U.shape[-1]
            self.weights.append(torch.nn.Parameter(torch.randn(num_elements, n_paths, num_channels) / max(n_paths, 1)))
        # the folded U follows U when a state dict (e.g. a checkpoint) replaces it
        self.register_load_state_dict_post_hook(_fold_all)

    def U(self, nu: int) -> torch.Tensor:
        return getattr(self, f"U_{nu}")

    def _fold(self, nu: int) -> None:
        """``monomials_ν`` [S_ν, ν]: the sorted tuples (i_1 <= ... <= i_ν) that U^{(ν)} couples to;
        ``U_sym_ν`` [(2L+1)·n_paths, S_ν]: Ū_{M,s,η} = Σ over the orderings (i) of s of U_{M,(i),η}."""
        U = self.U(nu)  # [M, d, ..., d, P]
        M, P = U.shape[0], U.shape[-1]
        tuples = torch.cartesian_prod(*[torch.arange(self.d, device=U.device)] * nu).reshape(-1, nu)  # [d^ν, ν]
        monomials, which = torch.unique(tuples.sort(dim=1).values, dim=0, return_inverse=True)  # [S, ν], [d^ν]
        U_sym = U.new_zeros(M, monomials.shape[0], P).index_add_(1, which, U.reshape(M, len(which), P))  # [M, S, P]
        used = U_sym.ne(0).any(dim=2).any(dim=0)  # [S]: tuples some coupling uses
        setattr(self, f"monomials_{nu}", monomials[used])
        setattr(self, f"U_sym_{nu}", U_sym[:, used].transpose(1, 2).reshape(M * P, int(used.sum())))

    def set_U(self, nu: int, U: torch.Tensor) -> None:
        """Replace U^{(ν)} (e.g. by mace-torch's over-complete tensor) and resize W^{(ν)} to match."""
        old = self.U(nu)
        setattr(self, f"U_{nu}", U.to(old))
        self._fold(nu)
        E, _, k = self.weights[nu - 1].shape
        self.weights[nu - 1] = torch.nn.Parameter(old.new_zeros(E, U.shape[-1], k))

    def product_basis(self, X: torch.Tensor, nu: int) -> torch.Tensor:
        """Π_ξ A_{i_ξ} for the sorted tuples of ``monomials_ν``: ``X`` [d, n] (row i = A_i) -> [S_ν, n]."""
        monomials = getattr(self, f"monomials_{nu}")  # [S_ν, ν]
        # index_select, not X[index]: the same rows, several times faster on the CPU (forward and backward)
        out = torch.index_select(X, 0, monomials[:, 0])  # [S_ν, n]
        for xi in range(1, nu):
            out = out * torch.index_select(X, 0, monomials[:, xi])
        return out

    def forward(self, A: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """``A`` [n_nodes, k, d], ``species`` [n_nodes] -> m [n_nodes, k·(2L+1)] (channel-major)."""
        n, k, d = A.shape
        M = self.irrep_out.dim
        X = A.permute(2, 0, 1).reshape(d, n * k)  # [d, n_nodes·k]: row i holds A_{·,·,i}
        m = A.new_zeros(M, n, k)
        for nu in range(1, self.correlation + 1):
            AA = self.product_basis(X, nu)  # [S_ν, n_nodes·k]
            U_sym = getattr(self, f"U_sym_{nu}").to(A.dtype)  # [M·n_paths, S_ν]
            B = (U_sym @ AA).reshape(M, U_sym.shape[0] // M, n, k)  # Eq. 10: B_{i,ηkLM} as [M, η, i, k]
            W = torch.index_select(self.weights[nu - 1], 0, species).transpose(0, 1)  # W_{z_i,η,k}: [η, i, k]
            m = m + (B * W).sum(dim=1)  # Eq. 11: [M, n_nodes, k]
        return m.permute(1, 2, 0).reshape(n, k * M)  # [n_nodes, k·(2L+1)]


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

    def forward(self, A: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """``A`` [n_nodes, irreps_in.dim] (flat) -> m [n_nodes, irreps_out.dim]."""
        n, k = A.shape[0], self.num_channels
        blocks = [A[:, s].reshape(n, k, mi.ir.dim) for s, mi in zip(self.irreps_in.slices(), self.irreps_in)]
        A = torch.cat(blocks, dim=-1)  # [n_nodes, k, (lmax+1)**2]
        return torch.cat([c(A, species) for c in self.contractions], dim=-1)
