"""The linear Atomic Cluster Expansion (Drautz 2019), the special case of MACE with one layer and no learning
inside the basis: MACE paper (Batatia et al. 2022, arXiv:2206.07697) Eqs. (7)–(10) with fixed radial functions,
and an energy linear in the invariant B-functions,

    E = Σ_i ( E0_{z_i} + Σ_η c_{z_i, η} B_{i, η} ),                                                 (ACE)

fitted by (ridge) linear least squares on energies and forces.

The basis, stage by stage:

* one-particle basis (Eq. 9): φ_{nzlm}(r_ij, z_j) = R_n(r_ij) Y_lm(r̂_ij) δ_{z z_j} — Bessel functions times the
  polynomial envelope (``radial.py``), one channel k = (n, z) per radial index and neighbour element;
* atomic basis (Eq. 9):        A_{i,nzlm} = Σ_{j ∈ N(i)} φ_{nzlm}(r_ij, z_j);
* B-functions (Eq. 10, L = 0): for a multiset of labels v_ξ = (n_ξ, z_ξ, l_ξ), ξ = 1..ν,
  B_{i,η} = Σ_m C^{00}_{η, v m} Π_ξ A_{i, v_ξ m_ξ}, with ``symmetric.coupling_block`` giving the coupling
  coefficients symmetric under permutations of equal labels (so each B-function appears once).
  Full ACE products mix channels (unlike MACE's per-channel products) and are selected by the total degree
  Σ_ξ (n_ξ + 1 + l_ξ) <= max_degree[ν - 1] ("sparse" ACE). ν = 0 is the constant (one-body) term.

Forces are linear in the same coefficients: F = −∂E/∂r = −Σ c ∂B/∂r. The rows −∂B/∂r of the least-squares
system come from the product rule at the level of the atomic basis (:func:`design_matrix`; the forward-mode
automatic-differentiation version :func:`design_matrix_jvp` is the reference it is tested against).

Command line (rMD17 protocol from the shared data folder: 950 train + 50 validation, test set)::

    python -m minimace.ace ethanol                       # n_max 12, l_max 4, degrees (12, 12, 12, 9): 25626 coefficients
    python -m minimace.ace aspirin --n-test 200 --max-degree 8 10 8   # a smaller basis

Limitations: the fit holds one matrix of size (n_elements · num_basis)², the weighted normal matrix G, and
factorises it in its own memory for every λ (G kept in the upper triangle, the Cholesky factor in the lower):
3.7 GiB for 22287 coefficients; the cost of the force rows grows with edges × coefficients — fine for molecules of
tens of atoms, slow for large periodic cells.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .radial import BesselBasis, PolynomialCutoff
from .so3 import spherical_harmonics
from .symmetric import coupling_block

__all__ = ["ACEBasis", "LinearACE", "ACECalculator", "design_matrix", "design_matrix_jvp", "mae_report", "fit_rmd17", "load_protocol",
           "agnesi", "gegenbauer", "bond_lengths"]


@dataclass
class _Group:
    """B-functions sharing degrees and label pattern: one contraction for all of them."""

    ls: tuple[int, ...]
    coupling: torch.Tensor  # [n_inv, 2l_1+1, ..., 2l_ν+1]
    channels: list = field(default_factory=list)  # one tuple (k_1, ..., k_ν) per member


def _label_multisets(labels, nu, max_degree, degree):
    """Sorted ν-multisets of label indices with Σ degree <= max_degree (labels sorted by degree)."""
    degrees = [degree(v) for v in labels]
    budget0 = max_degree + 1e-9  # degrees may be fractions (l / l_weight): compare with a tolerance

    def extend(prefix, start, budget):
        if len(prefix) == nu:
            yield tuple(prefix)
            return
        for a in range(start, len(labels)):
            if degrees[a] * (nu - len(prefix)) > budget:  # the rest are at least as costly
                break
            yield from extend(prefix + [a], a, budget - degrees[a])

    return extend([], 0, budget0)


def bond_lengths(atomic_numbers) -> np.ndarray:
    """Typical bond lengths r_0(z, z') = r_cov(z) + r_cov(z') (Å, ASE's covalent radii): [n_el, n_el]."""
    from ase.data import covalent_radii

    r = np.array([covalent_radii[int(z)] for z in atomic_numbers])
    return r[:, None] + r[None, :]


def agnesi(r: torch.Tensor, r_0: torch.Tensor, p: int = 2, q: int = 4, a: float = 1.0) -> torch.Tensor:
    """Generalised Agnesi distance transform y(r) = 1 / (1 + a s^q / (1 + s^(q-p))), s = r / r_0.

    y(0) = 1 and y falls like s^-p far from r_0 and is flat (s^q) near r = 0: the transformed
    coordinate spends its resolution around the bond length r_0, where the energy changes fastest.
    """
    s = r / r_0
    return 1.0 / (1.0 + a * s**q / (1.0 + s ** (q - p)))


def gegenbauer(x: torch.Tensor, n_max: int, lam: float) -> torch.Tensor:
    """Orthonormal Gegenbauer polynomials Ĉ_n^λ(x), n < n_max, weight (1 − x²)^(λ − 1/2) on [−1, 1].

    Recursion n C_n = 2x (n + λ − 1) C_{n−1} − (n + 2λ − 2) C_{n−2}, then divided by the norm
    h_n = π 2^(1−2λ) Γ(n + 2λ) / (n! (n + λ) Γ(λ)²).  ``x`` [...] -> [..., n_max].
    """
    C = [torch.ones_like(x), 2.0 * lam * x]
    for n in range(2, n_max):
        C.append((2.0 * x * (n + lam - 1.0) * C[-1] - (n + 2.0 * lam - 2.0) * C[-2]) / n)
    log_h = [math.log(math.pi) + (1 - 2 * lam) * math.log(2) + math.lgamma(n + 2 * lam) - math.lgamma(n + 1)
             - math.log(n + lam) - 2 * math.lgamma(lam) for n in range(n_max)]
    return torch.stack([c * math.exp(-0.5 * h) for c, h in zip(C[:n_max], log_h)], dim=-1)


class ACEBasis(torch.nn.Module):
    """Invariant ACE B-functions of every atom (no trainable parameters).

    Parameters
    ----------
    atomic_numbers : sequence of int
        Elements z (neighbour channels and centre elements).
    r_max : float
        Cutoff radius (Å), one for all orders.
    n_max : int
        Number of radial functions R_n.
    l_max : int
        Largest degree of the spherical harmonics.
    max_degree : sequence of float
        ``max_degree[ν-1]`` bounds the total degree Σ_ξ (n_ξ + 1 + l_ξ / l_weight) of the B-functions of
        order ν; its length is the largest correlation order ν (body order ν + 1).
    num_polynomial_cutoff : int
        Order p of the envelope of ``radial="bessel"``/``"chebyshev"``.
    radial : str
        ``"bessel"``: R_n = j_n(r) f_p(r) (MACE's radial features, ``radial.py``);
        ``"chebyshev"``: R_n = T_n(x(r)) f_p(r), Chebyshev polynomials of y = 1 / (1 + (r / r_0)²) mapped to
        x ∈ [-1, 1] on [0, r_max];
        ``"agnesi"`` (linear-ACE codes, ACE1/ACEpotentials): R_n^{z_i z_j}(r) = Ĉ_n(x) (1 − x²)²,
        orthonormal Gegenbauer polynomials of x ∈ [-1, 1], the generalised Agnesi transform
        (:func:`agnesi`, powers ``agnesi_pq``) of r / r_0(z_i, z_j) rescaled so that x(0) = 1 and
        x(r_max) = −1. The envelope (1 − x²)² makes R_n and its derivative vanish at the cutoff; the weight
        of Ĉ_n is the envelope squared, so the R_n are orthonormal in x.
    r_0 : float or None
        Scale of the distance transform (Å). For ``"agnesi"`` ``None`` (the default there) means one r_0 per
        element pair, the bond length of :func:`bond_lengths`.
    l_weight : float
        Weight w_L of the angular degree in the total degree n + 1 + l / w_L (1: the historic
        n + 1 + l; the linear-ACE default is 1.5, which lets l grow further than n).
    agnesi_pq : tuple of int
        Powers (p, q) of the Agnesi transform.
    """

    def __init__(self, atomic_numbers, r_max=5.0, n_max=8, l_max=3, max_degree=(8, 10, 8), num_polynomial_cutoff=5,
                 radial="bessel", r_0=1.0, l_weight=1.0, agnesi_pq=(2, 4)):
        super().__init__()
        if radial not in ("bessel", "chebyshev", "agnesi"):
            raise ValueError(f"radial must be 'bessel', 'chebyshev' or 'agnesi', got {radial!r}")
        if r_0 is None and radial != "agnesi":
            raise ValueError(f"r_0=None (bond lengths per element pair) needs radial='agnesi', got {radial!r}")
        self.config = dict(atomic_numbers=[int(z) for z in atomic_numbers], r_max=float(r_max), n_max=int(n_max),
                           l_max=int(l_max), max_degree=[float(m) for m in max_degree],
                           num_polynomial_cutoff=int(num_polynomial_cutoff), radial=radial,
                           r_0=None if r_0 is None else float(r_0), l_weight=float(l_weight),
                           agnesi_pq=[int(agnesi_pq[0]), int(agnesi_pq[1])])
        self.radial, self.r_0 = radial, None if r_0 is None else float(r_0)
        self.atomic_numbers = [int(z) for z in atomic_numbers]
        self.r_max, self.n_max, self.l_max = float(r_max), int(n_max), int(l_max)
        self.max_degree = tuple(float(m) for m in max_degree)
        self.l_weight, self.agnesi_pq = float(l_weight), tuple(int(p) for p in agnesi_pq)
        self.bessel = BesselBasis(r_max, n_max)
        self.cutoff = PolynomialCutoff(r_max, num_polynomial_cutoff)
        self.register_buffer("z_to_index", torch.full((max(self.atomic_numbers) + 1,), -1, dtype=torch.long))
        self.z_to_index[self.atomic_numbers] = torch.arange(len(self.atomic_numbers))
        n_el = len(self.atomic_numbers)
        r0 = bond_lengths(self.atomic_numbers) if r_0 is None else np.full((n_el, n_el), float(r_0))
        self.register_buffer("pair_r_0", torch.tensor(r0, dtype=torch.float64))  # [n_el, n_el] (Å)
        degree = self.label_degree
        labels = sorted(
            ((n, e, l) for n in range(n_max) for e in range(n_el) for l in range(l_max + 1)),
            key=lambda v: (degree(v), v),
        )
        self.groups: dict[tuple, _Group] = {}
        for nu, budget in enumerate(self.max_degree, start=1):
            for multiset in _label_multisets(labels, nu, budget, degree):
                vs = [labels[a] for a in multiset]
                ls = tuple(l for _, _, l in vs)
                if sum(ls) % 2:  # natural parity: invariants need an even Σl
                    continue
                first = {}
                pattern = tuple(first.setdefault(v, len(first)) for v in vs)
                key = (ls, pattern)
                if key not in self.groups:
                    coupling = coupling_block(ls, 0, pattern)[:, 0]  # [n_inv, 2l_1+1, ..., 2l_ν+1], cached
                    if coupling.shape[0] == 0:
                        continue
                    self.groups[key] = _Group(ls, coupling)
                self.groups[key].channels.append(tuple(n * n_el + e for n, e, _ in vs))
        self.sizes = [g.coupling.shape[0] * len(g.channels) for g in self.groups.values()]
        self.num_basis = 1 + sum(self.sizes)  # the constant (ν = 0) first

    def label_degree(self, label) -> float:
        """Degree n + 1 + l / l_weight of a one-particle label (n, z, l)."""
        n, _, l = label
        return n + 1 + l / self.l_weight

    def counts(self) -> dict[int, int]:
        """Number of B-functions of each correlation order ν (ν = 0: the constant)."""
        out = {0: 1}
        for (ls, _), size in zip(self.groups, self.sizes):
            out[len(ls)] = out.get(len(ls), 0) + size
        return out

    def column_orders_and_degrees(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Correlation order ν and total degree Σ_ξ (n_ξ + 1 + l_ξ / l_weight) of every B-function: 2 × [num_basis]."""
        n_el = len(self.atomic_numbers)
        orders, degrees = [torch.zeros(1)], [torch.zeros(1)]
        for group in self.groups.values():
            n_inv = group.coupling.shape[0]
            deg = [sum(self.label_degree((k // n_el, 0, l)) for k, l in zip(ch, group.ls)) for ch in group.channels]
            degrees.append(torch.tensor(deg, dtype=torch.float64).repeat_interleave(n_inv))
            orders.append(torch.full((len(deg) * n_inv,), float(len(group.ls))))
        return torch.cat(orders).long(), torch.cat(degrees).double()

    def smoothness(self, p: float = 4.0) -> torch.Tensor:
        """Algebraic smoothness weights γ_η = Σ_ξ ((n_ξ + 1)^p + (l_ξ / l_weight)^p) of the B-functions.

        The prior of ACEpotentials' ``algebraic_smoothness_prior``: a regularisation λ Σ_η γ_η² c_η² that
        grows with the degree favours smooth potentials (high n, l resolve fine detail). The constant gets 1.
        Returns ``[num_basis]`` in the column order of :meth:`forward`.
        """
        n_el = len(self.atomic_numbers)
        out = [torch.ones(1, dtype=torch.float64)]
        for group in self.groups.values():
            n_inv = group.coupling.shape[0]
            gamma = [sum((k // n_el + 1) ** p + (l / self.l_weight) ** p for k, l in zip(ch, group.ls))
                     for ch in group.channels]  # one per member
            out.append(torch.tensor(gamma, dtype=torch.float64).repeat_interleave(n_inv))
        return torch.cat(out)

    def radial_functions(self, lengths: torch.Tensor, r_0=None) -> torch.Tensor:
        """R_n(r) of the one-particle basis: ``lengths`` [n_edges, 1] -> [n_edges, n_max].

        ``r_0`` [n_edges, 1]: the transform scale of each edge (``radial="agnesi"``; default ``self.r_0`` or the
        bond length of the first element pair).
        """
        if self.radial == "bessel":
            return self.bessel(lengths) * self.cutoff(lengths)
        if self.radial == "agnesi":
            if r_0 is None:
                r_0 = self.r_0 if self.r_0 is not None else float(self.pair_r_0[0, 0])
            r_0 = torch.as_tensor(r_0, dtype=lengths.dtype)
            p, q = self.agnesi_pq
            y = agnesi(lengths, r_0, p, q)  # (y_c, 1]
            y_c = agnesi(torch.full_like(lengths, self.r_max), r_0, p, q)
            x = 1.0 - 2.0 * (1.0 - y) / (1.0 - y_c)  # x(0) = 1, x(r_max) = -1
            inside = (lengths < self.r_max).to(lengths.dtype)
            return gegenbauer(x[..., 0], self.n_max, 4.5) * ((1.0 - x * x) ** 2 * inside)  # [n_edges, n_max]
        y = 1.0 / (1.0 + (lengths / self.r_0) ** 2)  # (y_min, 1] on [0, r_max)
        y_min = 1.0 / (1.0 + (self.r_max / self.r_0) ** 2)
        x = 2.0 * (y - y_min) / (1.0 - y_min) - 1.0  # [-1, 1]
        T = [torch.ones_like(x), x]
        for _ in range(2, self.n_max):
            T.append(2.0 * x * T[-1] - T[-2])  # Chebyshev recursion T_{n+1} = 2x T_n - T_{n-1}
        return torch.cat(T[: self.n_max], dim=-1) * self.cutoff(lengths)  # [n_edges, n_max]

    def edge_radial_angular(self, vectors, species_i, species_j) -> torch.Tensor:
        """R_n(r_ij) Y_lm(r̂_ij) of every edge, before the neighbour element is attached: [n_edges, n_max, d].

        ``vectors`` [n_edges, 3] (r_j − r_i + shift), element indices of the centre and the neighbour [n_edges]
        (they choose the transform scale r_0 of ``radial="agnesi"``).
        """
        lengths = torch.linalg.norm(vectors, dim=-1, keepdim=True)  # [n_edges, 1]
        r_0 = self.pair_r_0.to(lengths.dtype)[species_i, species_j][:, None]  # [n_edges, 1]
        radial = self.radial_functions(lengths, r_0)  # [n_edges, n_max]
        Y = spherical_harmonics(self.l_max, vectors, normalize=True)  # [n_edges, d]
        return radial[:, :, None] * Y[:, None, :]  # [n_edges, n_max, d]

    def edge_basis(self, vectors, species_i, species_j) -> torch.Tensor:
        """One-particle basis φ_{(n, z), lm}(r_ij) = R_n(r_ij) Y_lm(r̂_ij) δ_{z z_j} of every edge (the summand of Eq. 9).

        ``vectors`` [n_edges, 3] (r_j − r_i + shift), element indices of the centre and the neighbour
        [n_edges] -> [n_edges, n_max * n_elements, (l_max + 1)²], channel k = n * n_elements + z_j.
        """
        phi = self.edge_radial_angular(vectors, species_i, species_j)  # [n_edges, n_max, d]
        onehot = torch.nn.functional.one_hot(species_j, len(self.atomic_numbers)).to(phi.dtype)
        phi = phi[:, :, None, :] * onehot[:, None, :, None]  # [n_edges, n_max, n_el, d]
        return phi.reshape(len(vectors), -1, phi.shape[-1])  # [n_edges, n_max * n_el, d]

    def atomic_basis(self, positions, atomic_numbers, edge_index, shifts) -> torch.Tensor:
        """A_{i, (n, z), lm} = Σ_j R_n(r_ij) Y_lm(r̂_ij) δ_{z z_j} (Eq. 9): [n_atoms, n_max * n_elements, d]."""
        i, j = edge_index
        vectors = positions[j] - positions[i] + shifts  # [n_edges, 3]
        species = self.z_to_index[atomic_numbers]  # [n_atoms]
        phi = self.edge_basis(vectors, species[i], species[j])  # [n_edges, K, d]
        A = torch.zeros((positions.shape[0],) + phi.shape[1:], dtype=phi.dtype, device=phi.device)
        return A.index_add(0, i, phi)  # [n_atoms, K, d]

    def group_partials(self, group: _Group, A: torch.Tensor):
        """B-functions of one group and their derivatives with respect to each factor A_{v_ξ}.

        B_{i,fq} = Σ_m C_{q, m_1..m_ν} Π_ξ A_{i, v_ξ(f), l_ξ m_ξ}; the partial P_ξ = ∂B/∂A_{v_ξ} is the same
        contraction with factor ξ left out. Returns B [n_atoms, n_f, n_inv] and P_ξ [n_atoms, n_f, n_inv, 2l_ξ+1].
        """
        channels = torch.tensor(group.channels, device=A.device)  # [n_f, ν]
        C = group.coupling.to(A.dtype)  # [n_inv, 2l_1+1, ..., 2l_ν+1]
        a = [A[:, channels[:, xi], l * l : (l + 1) ** 2] for xi, l in enumerate(group.ls)]  # [n_atoms, n_f, 2l+1]
        letters = "abcdeg"[: len(group.ls)]
        partials = []
        for xi in range(len(group.ls)):
            others = [k for k in range(len(group.ls)) if k != xi]
            if not others:  # ν = 1: B = C A, ∂B/∂A = C
                partials.append(C.expand(a[0].shape[:2] + C.shape))
                continue
            spec = "q" + letters + "".join(",nf" + letters[k] for k in others) + "->nfq" + letters[xi]
            partials.append(torch.einsum(spec, C, *[a[k] for k in others]))  # [n_atoms, n_f, n_inv, 2l_ξ+1]
        B = torch.einsum("nfqm,nfm->nfq", partials[-1], a[-1])
        return B, partials

    def forward(self, positions, atomic_numbers, edge_index, shifts) -> torch.Tensor:
        """B-functions of every atom: [n_atoms, num_basis] (column 0 is the constant 1)."""
        A = self.atomic_basis(positions, atomic_numbers, edge_index, shifts)  # [n_atoms, K, d]
        out = [A.new_ones(A.shape[0], 1)]
        for group in self.groups.values():
            channels = torch.tensor(group.channels, device=A.device)  # [n_f, ν]
            C = group.coupling.to(A.dtype)  # [n_inv, 2l_1+1, ..., 2l_ν+1]
            X = None
            for xi, l in enumerate(group.ls):
                a = A[:, channels[:, xi], l * l : (l + 1) ** 2]  # [n_atoms, n_f, 2l+1]
                if X is None:
                    X = torch.einsum("nfa,qa...->nfq...", a, C)  # [n_atoms, n_f, n_inv, 2l_2+1, ...]
                else:
                    X = torch.einsum("nfqa...,nfa->nfq...", X, a)  # one factor fewer
            out.append(X.reshape(A.shape[0], -1))  # [n_atoms, n_f * n_inv]
        return torch.cat(out, dim=1)  # [n_atoms, num_basis]


def _partial_layout(basis: ACEBasis):
    """Where each partial ∂B_w/∂A_{(n, z), lm} goes in the compact per-atom blocks D_{z,n} [W_{z,n}, d].

    The partials are those of :meth:`ACEBasis.group_partials`, group by group and factor by factor, each P_ξ
    [n_f, n_inv, 2l_ξ+1] flattened; the row of member f, invariant q is its B column w = offset + f n_inv + q.
    Block (z, n) keeps only the W_{z,n} columns w with a factor in channel (n, z), sorted. Returns the flat
    position of every partial in the blocks laid end to end [nnz], and per block (z, n, first row, columns w).
    """
    n_el, d = len(basis.atomic_numbers), (basis.l_max + 1) ** 2
    key, lm, offset = [], [], 1  # key = (z n_max + n) W + w; column 0, the constant, has no partials
    for group in basis.groups.values():
        n_inv, channels = group.coupling.shape[0], torch.tensor(group.channels)  # [n_f, ν]
        rows = offset + torch.arange(len(channels))[:, None] * n_inv + torch.arange(n_inv)  # [n_f, n_inv]
        for xi, l in enumerate(group.ls):
            block = (channels[:, xi] % n_el) * basis.n_max + channels[:, xi] // n_el  # [n_f]: (z, n)
            k = block[:, None, None] * basis.num_basis + rows[:, :, None]  # [n_f, n_inv, 1]
            key.append(k.expand(-1, -1, 2 * l + 1).reshape(-1))
            lm.append(torch.arange(l * l, (l + 1) ** 2).repeat(k.numel()))
        offset += n_inv * len(channels)
    keys, rank = torch.unique(torch.cat(key), sorted=True, return_inverse=True)  # rows of all blocks, in order
    blocks, first = [], 0
    for b, count in zip(*torch.unique_consecutive(keys // basis.num_basis, return_counts=True)):
        z, n = divmod(int(b), basis.n_max)
        blocks.append((z, n, first, keys[first : first + count] % basis.num_basis))
        first += int(count)
    return rank * d + torch.cat(lm), len(keys), blocks


def _neighbours_by_element(i, j, species, n_atoms, n_elements):
    """The edges i → j grouped by the neighbour's element z and padded per centre atom.

    Returns, for each z < n_elements, (edges [E_z] sorted by i, slot p [E_z] of each in its atom's list,
    M_z = max slots; 0 for an element absent from the batch).
    """
    out = []
    for z in range(n_elements):
        edges = (species[j] == z).nonzero()[:, 0]
        edges = edges[torch.argsort(i[edges], stable=True)]  # [E_z], by centre atom
        counts = torch.bincount(i[edges], minlength=n_atoms)  # [N]
        slot = torch.arange(len(edges)) - (torch.cumsum(counts, 0) - counts)[i[edges]]  # [E_z]
        out.append((edges, slot, int(counts.max()) if len(edges) else 0))
    return out


def design_matrix(basis: ACEBasis, batch: dict, forces: bool, atom_chunk: int = 32):
    """Energy rows X [B, n_el * num_basis] and force rows J = −∂X/∂r [N, 3, n_el * num_basis] of a batch.

    X_{g, (z, η)} = Σ_{i ∈ g, z_i = z} B_{i,η}. The force rows use the product rule instead of one derivative
    pass per coordinate: with T_e = ∂B_i/∂r_ij = Σ_ξ Σ_m P_ξ[i, m] ∂φ_{v_ξ, l_ξ m}(r_ij)/∂r_ij for each edge
    e = (i → j) (P_ξ from :meth:`ACEBasis.group_partials`), atom j receives ∂B_i/∂r_j = T_e and atom i
    ∂B_i/∂r_i = −T_e. The cost is a few B evaluations, not 3 N of them (:func:`design_matrix_jvp` is the
    automatic-differentiation reference).

    The sum over ξ and m runs as small dense matrix products: the partials of ``atom_chunk`` atoms are laid
    out as one block D_{z,n} [W_{z,n}, d] per A channel (n, z), holding only the W_{z,n} B columns with a factor
    in that channel (:func:`_partial_layout`), and each block is multiplied with ∂φ_{n,lm}/∂r of the atom's
    neighbours of element z, padded to the largest count (:func:`_neighbours_by_element`).
    """
    species = basis.z_to_index[batch["atomic_numbers"]]  # [N]
    n_graphs, n_el, n_atoms = len(batch["ptr"]) - 1, len(basis.atomic_numbers), len(species)
    owner = batch["batch"] * n_el + species  # [N]: (graph, centre element) slot
    if not forces:
        B = basis(batch["positions"], batch["atomic_numbers"], batch["edge_index"], batch["shifts"])
        return B.new_zeros(n_graphs * n_el, B.shape[1]).index_add(0, owner, B).reshape(n_graphs, -1), None
    positions, (i, j) = batch["positions"], batch["edge_index"]
    vectors = positions[j] - positions[i] + batch["shifts"]  # [E, 3]
    W, d = basis.num_basis, (basis.l_max + 1) ** 2
    n_d = basis.n_max * d

    def phi_of(v):
        return basis.edge_radial_angular(v, species[i], species[j])  # [E, n_max, d]

    # every edge's φ depends on its own vector only: one tangent e_α on all edges gives ∂φ_e/∂r_ij,α
    units = torch.eye(3, dtype=positions.dtype)[:, None, :].expand(3, len(i), 3)  # [α, E, 3]
    phi, dphi = torch.func.vmap(lambda t: torch.func.jvp(phi_of, (vectors,), (t,)), out_dims=(None, 0))(units)
    dphi = dphi.reshape(3, len(i), n_d).transpose(0, 1)  # [E, α, n_d]
    A = phi.new_zeros(n_atoms * n_el, basis.n_max, d).index_add(0, i * n_el + species[j], phi)  # Eq. 9
    A = A.reshape(n_atoms, n_el, basis.n_max, d).transpose(1, 2).reshape(n_atoms, -1, d)  # [N, K, d], k = n n_el + z
    where, n_rows, blocks = _partial_layout(basis)  # [nnz] into the blocks D_{z,n}, one [W_zn, d] each
    neighbours = _neighbours_by_element(i, j, species, n_atoms, n_el)
    padded = []
    for edges, slot, width in neighbours:  # ∂φ/∂r of the neighbours of element z, [N, n_max, M_z α, d]
        g = dphi.new_zeros(n_atoms, width, 3, basis.n_max, d)
        g[i[edges], slot] = dphi[edges].reshape(-1, 3, basis.n_max, d)
        padded.append(g.permute(0, 3, 1, 2, 4).reshape(n_atoms, basis.n_max, width * 3, d))
    J = A.new_zeros(n_atoms, 3, n_el, W)  # −∂X/∂r_a by atom a, α, centre element slot and column
    J_slots = J.permute(0, 2, 1, 3)  # [N, n_el, α, W], the same memory
    B = A.new_ones(n_atoms, W)  # column 0: the constant
    for a0 in range(0, n_atoms, atom_chunk):
        a1 = min(a0 + atom_chunk, n_atoms)
        B_cols, P_cols = [], []
        for group in basis.groups.values():
            Bg, partials = basis.group_partials(group, A[a0:a1])  # [n_c, n_f, n_inv], [n_c, n_f, n_inv, 2l_ξ+1]
            B_cols.append(Bg.reshape(a1 - a0, -1))
            P_cols += [P.reshape(a1 - a0, -1) for P in partials]
        B[a0:a1, 1:] = torch.cat(B_cols, dim=1)
        P = torch.cat(P_cols, dim=1)  # [n_c, nnz]
        D = P.new_zeros(a1 - a0, n_rows * d).index_add_(1, where, P).reshape(a1 - a0, n_rows, d)
        T = [D.new_zeros(a1 - a0, W, width * 3) for _, _, width in neighbours]  # T_e = ∂B_i/∂r_ij, [n_c, W, M_z α]
        for z, n, first, rows in blocks:  # Σ_lm D_i[w, (n, z), lm] ∂φ_(n, lm)(r_ij)/∂r_ij: one product per block
            if neighbours[z][2]:
                T[z].index_add_(1, rows, D[:, first : first + len(rows)] @ padded[z][a0:a1, n].transpose(1, 2))
        for z, (edges, slot, width) in enumerate(neighbours):
            if width == 0:
                continue
            Tz = T[z].reshape(a1 - a0, W, width, 3)  # padding slots are zero
            J_slots[torch.arange(a0, a1), species[a0:a1]] += Tz.sum(2).transpose(1, 2)  # −∂X/∂r_i = +Σ_e T_e
            lo, hi = torch.searchsorted(i[edges], torch.tensor([a0, a1]))
            e = edges[lo:hi]
            J_slots.index_put_((j[e], species[i[e]]), -Tz[i[e] - a0, :, slot[lo:hi]].transpose(1, 2),
                               accumulate=True)  # −∂X/∂r_j
    X = B.new_zeros(n_graphs * n_el, W).index_add(0, owner, B).reshape(n_graphs, -1)
    return X, J.reshape(n_atoms, 3, -1)  # [B, n_feat], [N, 3, n_feat] (a view)


def design_matrix_jvp(basis: ACEBasis, batch: dict, forces: bool, chunk_size: int = 9):
    """:func:`design_matrix` by automatic differentiation: the reference the product-rule version is tested against.

    The force rows are forward-mode derivatives (``torch.func.jvp``), one tangent per Cartesian coordinate of
    atom a of every graph at once, ``chunk_size`` tangents vectorised together (``torch.func.vmap``).
    """
    species = basis.z_to_index[batch["atomic_numbers"]]  # [N]
    n_graphs, n_el = len(batch["ptr"]) - 1, len(basis.atomic_numbers)
    owner = batch["batch"] * n_el + species  # [N]: (graph, centre element) slot

    def energy_features(positions):
        B = basis(positions, batch["atomic_numbers"], batch["edge_index"], batch["shifts"])  # [N, n_basis]
        X = B.new_zeros(n_graphs * n_el, B.shape[1]).index_add(0, owner, B)
        return X.reshape(n_graphs, -1)  # [B, n_el * n_basis]

    positions = batch["positions"]
    if not forces:
        return energy_features(positions), None
    n_atoms = batch["ptr"][1:] - batch["ptr"][:-1]  # [B]
    local = torch.arange(len(positions)) - batch["ptr"][batch["batch"]]  # index of each atom in its graph
    m = int(n_atoms.max())
    tangents = torch.zeros(m, 3, *positions.shape, dtype=positions.dtype)  # [a, α, N, 3]: atom a of every graph
    for alpha in range(3):
        tangents[local, alpha, torch.arange(len(positions)), alpha] = 1.0
    tangents = tangents.reshape(3 * m, *positions.shape)

    def derivative(tangent):
        return torch.func.jvp(energy_features, (positions,), (tangent,))[1]  # [B, n_feat]

    dX = torch.func.vmap(derivative, chunk_size=chunk_size)(tangents)  # [3m, B, n_feat], tangents batched
    X = energy_features(positions)
    dX = dX.reshape(m, 3, n_graphs, -1)  # [a, α, B, n_feat]
    J = -dX[local, :, batch["batch"]]  # [N, 3, n_feat]: atom t is atom local[t] of graph batch[t]
    return X, J


def _symmetric(lower: np.ndarray, block: int = 1024) -> torch.Tensor:
    """The symmetric matrix whose lower triangle a Fortran-ordered ``syrk`` output holds, filled in place.

    Returned as a C-ordered tensor sharing the memory (the transpose of a symmetric matrix is itself).
    """
    n = len(lower)
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        lower[r0:r1, r1:] = lower[r1:, r0:r1].T  # the strictly upper part right of the diagonal block
        diag = lower[r0:r1, r0:r1]
        upper = np.triu_indices(r1 - r0, 1)
        diag[upper] = diag.T[upper]
    return torch.from_numpy(lower.T)


def _regularised_solve(G: torch.Tensor, b: torch.Tensor, penalty: torch.Tensor, work: torch.Tensor):
    """c = (G + diag(penalty))⁻¹ b by Cholesky (LAPACK potrf/potrs), or None if not positive definite.

    The matrix is scaled to unit diagonal first (Jacobi: the solution is unchanged, the factorisation accurate)
    and factorised in place in ``work`` ([n, n], overwritten), so the solve needs no memory beyond it.
    """
    from scipy.linalg.lapack import dpotrf, dpotrs

    if not bool((G.diagonal() + penalty > 0).all()):
        return None  # a non-positive diagonal: not positive definite
    d = (G.diagonal() + penalty).sqrt()  # [n]
    torch.div(G, d[:, None], out=work)
    work /= d[None, :]
    work.diagonal().add_(penalty / d**2)
    # a symmetric C-ordered matrix is its own transpose in Fortran order: factorise it where it lies
    L, info = dpotrf(work.numpy().T, lower=1, overwrite_a=1, clean=0)
    if info != 0:
        return None
    x, info = dpotrs(L, (b / d).numpy(), lower=1)
    return None if info != 0 else torch.from_numpy(x) / d


def _solve_from_upper(F: np.ndarray, diag: torch.Tensor, b: torch.Tensor, penalty: torch.Tensor, block: int = 1024):
    """c = (G + diag(penalty))⁻¹ b in the memory of G alone: the Cholesky factor lives in the lower triangle.

    ``F`` [n, n], Fortran-ordered, holds G in its strict upper triangle (``diag``: G's diagonal, kept aside).
    The lower triangle is rebuilt from the upper one, scaled to unit diagonal (Jacobi), and factorised in
    place (LAPACK potrf/potrs, which read and write the lower triangle only), so the upper triangle survives
    for the next λ. Returns None if the matrix is not positive definite.
    """
    from scipy.linalg.lapack import dpotrf, dpotrs

    if not bool((diag + penalty > 0).all()):
        return None  # a non-positive diagonal: not positive definite
    d = (diag + penalty).sqrt().numpy()  # [n]
    n, inv = len(d), 1.0 / d
    for c0 in range(0, n, block):
        c1 = min(c0 + block, n)
        F[c1:, c0:c1] = F[c0:c1, c1:].T * inv[c1:, None] * inv[None, c0:c1]  # below the diagonal block
        tile, low = F[c0:c1, c0:c1], np.tril_indices(c1 - c0, -1)
        tile[low] = tile.T[low] * inv[c0:c1][low[0]] * inv[c0:c1][low[1]]
        tile[np.diag_indices(c1 - c0)] = 1.0  # (G_ii + penalty_i) / d_i²
    L, info = dpotrf(F, lower=1, overwrite_a=1, clean=0)  # a Fortran-ordered float64 array: no copy
    if info != 0:
        return None
    x, info = dpotrs(L, (b.numpy() * inv), lower=1)
    return None if info != 0 else torch.from_numpy(x * inv)


PRIORS = ("smoothness", "ridge", "scaled_smoothness")


class LinearACE:
    """Linear ACE potential: E = Σ_i (E0_{z_i} + Σ_η c_{z_i,η} B_{i,η}), fitted on energies and forces.

    Parameters
    ----------
    atomic_numbers : sequence of int
        Elements.
    e0s : dict[int, float], optional
        Isolated-atom energies E0_z (eV); zero when not given (the constant B-function fits them).
    **basis_kwargs
        Passed to :class:`ACEBasis` (``r_max``, ``n_max``, ``l_max``, ``max_degree``, ``radial``, ...).

    Attributes
    ----------
    coefficients : torch.Tensor
        ``[n_elements, num_basis]`` after :meth:`fit`.
    fit_info : dict
        Chosen regularisation, validation errors for every λ tried, timings.
    """

    def __init__(self, atomic_numbers, e0s=None, **basis_kwargs):
        self.basis = ACEBasis(atomic_numbers, **basis_kwargs).double()
        self.e0s = {int(z): float(e) for z, e in (e0s or {}).items()}
        self.coefficients = None
        self.fit_info: dict = {}

    def _e0(self, batch) -> torch.Tensor:
        e0 = torch.tensor([self.e0s.get(int(z), 0.0) for z in batch["atomic_numbers"]], dtype=torch.float64)
        return torch.zeros(len(batch["ptr"]) - 1, dtype=torch.float64).index_add(0, batch["batch"], e0)  # [B]

    def _blocks(self, graphs, batch_size=50):
        """Per batch: energy rows X / sqrt(n_atoms) [B, n_feat] with targets (E − ΣE0) / sqrt(n_atoms) [B],
        and force rows J [3N, n_feat] with targets F [3N]."""
        from .graph import batch_graphs

        for start in range(0, len(graphs), batch_size):
            batch = batch_graphs(graphs[start : start + batch_size])
            X, J = design_matrix(self.basis, batch, forces=True)
            root_n = (batch["ptr"][1:] - batch["ptr"][:-1]).to(torch.float64).sqrt()  # [B]
            y_e = (batch["energy"] - self._e0(batch)) / root_n
            yield X / root_n[:, None], y_e, J.reshape(-1, X.shape[1]), batch["forces"].reshape(-1)

    def _rows(self, graphs, energy_weight, forces_weight, batch_size=50):
        """Yield weighted least-squares rows (matrix, target) batch by batch."""
        for X, y_e, J, y_f in self._blocks(graphs, batch_size):
            yield torch.cat([energy_weight * X, forces_weight * J]), torch.cat([energy_weight * y_e, forces_weight * y_f]), None

    def normal_equations(self, graphs, batch_size=50, weights=None) -> dict:
        """Normal matrices of the energy and force rows, accumulated batch by batch (never the whole design matrix).

        Returns ``{"GE", "bE", "GF", "bF"}``: G_E = Σ X^T X / n_atoms, b_E = Σ X^T (E − ΣE0) / n_atoms over the
        configurations, G_F = Σ J^T J, b_F = Σ J^T F over the force components ([n_feat, n_feat] and [n_feat]).
        With weights w_E, w_F the weighted problem is G = w_E² G_E + w_F² G_F, b = w_E² b_E + w_F² b_F.
        The Gram matrices are updated by BLAS ``syrk`` (one triangle: half the flops of ``J.T @ J``).

        ``weights=(w_E, w_F)``: accumulate the weighted G and b directly, one n_feat² matrix instead of two
        (``{"G_upper", "b", "weights"}``: G in the upper triangle of a Fortran-ordered array, which
        :meth:`solve` consumes, factorising every λ in the lower triangle of the same memory).
        """
        from scipy.linalg.blas import dsyrk

        if weights is not None:
            (w_e, w_f), G, b = weights, None, None
            for X, y_e, J, y_f in self._blocks(graphs, batch_size):
                if G is None:
                    G, b = np.zeros((X.shape[1],) * 2, order="F"), torch.zeros(X.shape[1], dtype=torch.float64)
                G = dsyrk(w_e**2, X.numpy().T, beta=1.0, c=G, lower=0, overwrite_c=1)  # upper triangle
                G = dsyrk(w_f**2, J.numpy().T, beta=1.0, c=G, lower=0, overwrite_c=1)
                b += w_e**2 * (X.T @ y_e) + w_f**2 * (J.T @ y_f)
            return {"G_upper": G, "b": b, "weights": (float(w_e), float(w_f))}
        GE = GF = bE = bF = None
        for X, y_e, J, y_f in self._blocks(graphs, batch_size):
            if GE is None:
                n = X.shape[1]
                GE, GF = np.zeros((n, n), order="F"), np.zeros((n, n), order="F")  # lower triangles
                bE, bF = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
            # a C-ordered [rows, n] matrix is its transpose in Fortran order: syrk(Jᵀ) = Jᵀ J
            GE = dsyrk(1.0, X.numpy().T, beta=1.0, c=GE, lower=1, overwrite_c=1)
            GF = dsyrk(1.0, J.numpy().T, beta=1.0, c=GF, lower=1, overwrite_c=1)
            bE += X.T @ y_e
            bF += J.T @ y_f
        return {"GE": _symmetric(GE), "bE": bE, "GF": _symmetric(GF), "bF": bF}

    def validation_rows(self, graphs, batch_size=50) -> dict:
        """The validation design matrix (energy rows / sqrt(n_atoms), force rows) and targets, concatenated."""
        blocks = list(self._blocks(graphs, batch_size))
        return {key: torch.cat([b[k] for b in blocks]) for k, key in enumerate(("XE", "yE", "XF", "yF"))}

    def regulariser(self, diag: torch.Tensor, prior: str = "smoothness", prior_p: float = 4.0,
                    columns=None) -> torch.Tensor:
        """Diagonal Γ² of the penalty λ Σ Γ²_η c_η² ([n_feat]), scaled so that λ is relative to mean(diag G).

        ``diag``: the diagonal of the weighted normal matrix G = w_E² G_E + w_F² G_F ([n_feat]).

        ``"smoothness"``: Γ_η ∝ γ_η (:meth:`ACEBasis.smoothness`), the features in their own units;
        ``"ridge"``: Γ²_η = G_ηη (ridge on unit-normalised columns); ``"scaled_smoothness"``: Γ²_η = G_ηη γ²_η.
        ``columns``: boolean mask of the features that ``diag`` holds (a sub-basis), default all.
        """
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
        gamma2 = self.basis.smoothness(prior_p).repeat(len(self.basis.atomic_numbers)) ** 2  # [n_feat]
        if columns is not None:
            gamma2 = gamma2[columns]
        if prior == "ridge":
            reg = diag.clone()
        elif prior == "smoothness":
            reg = gamma2
        else:
            reg = diag * gamma2
        used = diag > 0
        reg = reg / reg[used].mean() * diag[used].mean()
        reg[~used] = diag[used].mean()  # unused columns (absent elements): kept at zero by the penalty
        return reg

    def solve(self, normal, valid, energy_weight=30.0, forces_weight=1.0, lambdas=None, prior="smoothness",
              prior_p=4.0, columns=None, return_all=False, overwrite=False):
        """Coefficients for every λ by a Cholesky factorisation of (G + λ Γ²), λ chosen on the validation rows.

        The matrix is symmetrically scaled to unit diagonal before the factorisation (a Jacobi
        preconditioner: the solution is unchanged and the factorisation is accurate); a λ for which it is
        not positive definite in floating point is skipped. The validation loss is the weighted squared
        residual of the validation configurations, the same loss as the fit. ``columns``: see
        :meth:`regulariser`; ``return_all``: also return the solution of every λ (``info["solutions"]``);
        ``overwrite``: form G in the memory of ``normal["GF"]`` and drop ``normal["GE"]`` (peak memory two
        n_feat² matrices: G and the factorisation's work buffer). Normal equations weighted when accumulated
        (``normal_equations(weights=...)``, what :meth:`fit` does) are solved in their own memory, one n_feat²
        matrix, and consumed; their weights must be ``energy_weight``, ``forces_weight``.
        """
        lambdas = [float(lam) for lam in (lambdas if lambdas is not None else 10.0 ** np.arange(-12.0, -1.0))]
        we2, wf2 = energy_weight**2, forces_weight**2
        if "G_upper" in normal:  # weighted when accumulated: one matrix, consumed
            if normal["weights"] != (float(energy_weight), float(forces_weight)):
                raise ValueError(f"the normal equations were weighted with {normal['weights']}, "
                                 f"not (energy_weight, forces_weight) = ({energy_weight}, {forces_weight})")
            F, b = normal.pop("G_upper"), normal["b"]
            diag = torch.from_numpy(F.diagonal().copy())
            reg = self.regulariser(diag, prior, prior_p, columns)

            def solve_one(penalty):
                return _solve_from_upper(F, diag, b, penalty)
        else:
            b = we2 * normal["bE"] + wf2 * normal["bF"]
            reg = self.regulariser(we2 * normal["GE"].diagonal() + wf2 * normal["GF"].diagonal(), prior, prior_p,
                                   columns)
            if overwrite:
                G = normal["GF"].mul_(wf2).add_(normal.pop("GE"), alpha=we2)
            else:
                G = torch.add(normal["GF"] * wf2, normal["GE"], alpha=we2)
            work = torch.empty_like(G)  # one n_feat² buffer, factorised in place for every λ

            def solve_one(penalty):
                return _regularised_solve(G, b, penalty, work)
        scores, errors, solutions = [], [], []
        for lam in lambdas:
            c = solve_one(lam * reg)
            if c is None:
                scores.append(float("inf"))
                errors.append(None)
                solutions.append(None)
                continue
            rE, rF = valid["XE"] @ c - valid["yE"], valid["XF"] @ c - valid["yF"]
            scores.append(we2 * float((rE**2).sum()) + wf2 * float((rF**2).sum()))
            errors.append({"E_rmse_meV_per_sqrt_atom": 1000 * float(rE.pow(2).mean().sqrt()),
                           "F_rmse_meV_per_A": 1000 * float(rF.pow(2).mean().sqrt())})
            solutions.append(c)
        solve_one = None  # frees the work buffer or the consumed matrix
        if all(s == float("inf") for s in scores):
            raise RuntimeError("the normal matrix is not positive definite for any λ tried; use larger lambdas")
        best = int(np.argmin(scores))
        extra = {"solutions": dict(zip(lambdas, solutions))} if return_all else {}
        return solutions[best], {**extra, "lambda": lambdas[best], "validation_loss": dict(zip(lambdas, scores)),
                                 "validation_errors": dict(zip(lambdas, errors)), "prior": prior,
                                 "prior_p": float(prior_p), "energy_weight": energy_weight, "forces_weight": forces_weight}

    def fit(self, train_graphs, valid_graphs, energy_weight=30.0, forces_weight=1.0, lambdas=None, batch_size=50,
            prior="smoothness", prior_p=4.0):
        """Regularised least squares on energies and forces; λ chosen by the validation error.

        Minimises Σ_c w_E² (E_c − Ê_c)² / n_atoms + Σ w_F² |F − F̂|² + λ Σ_η Γ²_η c²_η.

        Parameters
        ----------
        train_graphs, valid_graphs : list of dict
            Graphs with ``energy`` and ``forces`` labels (``minimace.graph.atoms_to_graph`` with
            ``r_max >= basis.r_max``).
        energy_weight, forces_weight : float
            Row weights: energy rows are ``energy_weight / sqrt(n_atoms)`` times (E − ΣE0), force rows
            ``forces_weight`` times F.
        lambdas : sequence of float, optional
            Regularisation strengths relative to mean(diag G). The one with the lowest validation loss
            (same weights as the fit) is kept.
        prior : str
            Shape Γ of the penalty (:meth:`regulariser`): ``"smoothness"`` (default, the algebraic
            smoothness prior of linear ACE, exponent ``prior_p``), ``"ridge"`` or ``"scaled_smoothness"``.

        Returns
        -------
        LinearACE
            self, fitted.
        """
        start, cpu = time.perf_counter(), time.process_time()
        normal = self.normal_equations(train_graphs, batch_size, weights=(energy_weight, forces_weight))
        valid = self.validation_rows(valid_graphs, batch_size)
        t_design = time.perf_counter() - start
        c, info = self.solve(normal, valid, energy_weight, forces_weight, lambdas, prior, prior_p, overwrite=True)
        del normal
        self.coefficients = c.reshape(len(self.basis.atomic_numbers), -1)  # [n_el, num_basis]
        self.fit_info = {**info, "num_features": int(c.shape[0]), "design_seconds": t_design,
                         "total_seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}
        return self

    def __call__(self, batch: dict) -> dict:
        """Energy [B], per-atom energy [N] (E0 included) and forces [N, 3] of a batch dict (autograd forces)."""
        positions = batch["positions"].detach().clone().requires_grad_(True)
        B = self.basis(positions, batch["atomic_numbers"], batch["edge_index"], batch["shifts"])  # [N, n_basis]
        species = self.basis.z_to_index[batch["atomic_numbers"]]  # [N]
        e0 = torch.tensor([self.e0s.get(int(z), 0.0) for z in batch["atomic_numbers"]], dtype=B.dtype)
        node_energy = (self.coefficients.to(B.dtype)[species] * B).sum(-1) + e0  # [N]
        n_graphs = len(batch["ptr"]) - 1
        energy = node_energy.new_zeros(n_graphs).index_add(0, batch["batch"], node_energy)  # [B]
        (grad,) = torch.autograd.grad(energy.sum(), positions)
        return {"energy": energy.detach(), "node_energy": node_energy.detach(), "forces": -grad}

    def predict(self, graphs, forces=True, batch_size=50) -> dict:
        """Energies [B] (eV) and forces [N, 3] (eV/Å) of the graphs, concatenated (forces by autograd)."""
        from .graph import batch_graphs

        energies, all_forces = [], []
        for start in range(0, len(graphs), batch_size):
            out = self(batch_graphs(graphs[start : start + batch_size]))
            energies.append(out["energy"])
            all_forces.append(out["forces"])  # [N, 3]
        out = {"energy": torch.cat(energies)}
        if forces:
            out["forces"] = torch.cat(all_forces)
        return out

    def save(self, path) -> None:
        """Write the basis settings, E0s and coefficients (a ``torch.save`` dict; read with :meth:`load`)."""
        if self.coefficients is None:
            raise ValueError("the model has no coefficients: fit it first")
        info = {k: v for k, v in self.fit_info.items() if not isinstance(v, dict)}
        torch.save({"format": "minimace.LinearACE", "version": 1, "basis": self.basis.config, "e0s": self.e0s,
                    "coefficients": self.coefficients, "fit_info": info}, path)

    @classmethod
    def load(cls, path) -> "LinearACE":
        """A model written by :meth:`save`."""
        try:
            state = torch.load(path, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
            raise ValueError(f"{path}: not a minimace LinearACE file (written by LinearACE.save): {error}") from None
        if not isinstance(state, dict) or state.get("format") != "minimace.LinearACE":
            raise ValueError(f"{path}: not a minimace LinearACE file (written by LinearACE.save)")
        config = dict(state["basis"])
        model = cls(config.pop("atomic_numbers"), e0s=state["e0s"], **config)
        if tuple(state["coefficients"].shape) != (len(model.basis.atomic_numbers), model.basis.num_basis):
            raise ValueError(f"{path}: coefficients of shape {tuple(state['coefficients'].shape)} do not match the "
                             f"basis ({len(model.basis.atomic_numbers)}, {model.basis.num_basis})")
        model.coefficients = state["coefficients"].to(torch.float64)
        model.fit_info = dict(state["fit_info"])
        return model


class ACECalculator(Calculator):
    """ASE calculator around a :class:`LinearACE` (or the path of a file written by :meth:`LinearACE.save`).

    Energies, per-atom energies and forces (by automatic differentiation, ``F = −∂E/∂r``), float64, CPU.
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies"]

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = LinearACE.load(model) if isinstance(model, (str, os.PathLike)) else model

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from .graph import atoms_to_graph

        super().calculate(atoms, properties, system_changes)
        graph = atoms_to_graph(self.atoms, self.model.basis.r_max)
        out = self.model(graph)
        energy = float(out["energy"][0])
        self.results = {"energy": energy, "free_energy": energy, "forces": out["forces"].numpy(),
                        "energies": out["node_energy"].numpy()}


def mae_report(model: LinearACE, graphs) -> dict:
    """Errors on labelled graphs: MAE and RMSE of energies (meV, total and per atom) and forces (meV/Å)."""
    from .graph import batch_graphs

    pred = model.predict(graphs)
    ref = batch_graphs(graphs)
    n_atoms = (ref["ptr"][1:] - ref["ptr"][:-1]).to(torch.float64)
    dE = (pred["energy"] - ref["energy"]).abs()
    dF = pred["forces"] - ref["forces"]
    return {
        "energy_mae_meV": 1000 * float(dE.mean()),
        "energy_per_atom_mae_meV": 1000 * float((dE / n_atoms).mean()),
        "forces_mae_meV_per_A": 1000 * float(dF.abs().mean()),
        "energy_rmse_meV": 1000 * float(dE.pow(2).mean().sqrt()),
        "forces_rmse_meV_per_A": 1000 * float(dF.pow(2).mean().sqrt()),
        "n_configs": len(graphs),
    }


RMD17 = {"ethanol": "botnet_ethanol", "aspirin": "rmd17_aspirin"}  # molecule -> shared data set (datasets.py)

# the defaults of the command line: the best settings measured on rMD17 ethanol within the cost bound of a 2-core
# laptop (20 minutes, 8 GiB; docs/linear_ace.md, benchmarks/results_ace_basis_ethanol.md): body order 5 (ν ≤ 4),
# Bessel radial basis, total degree n + 1 + l, ridge prior
RECIPE = dict(r_max=5.0, n_max=12, l_max=4, max_degree=(12, 12, 12, 9), radial="bessel", r_0=1.0, l_weight=1.0)
FIT = dict(energy_weight=30.0, forces_weight=1.0, prior="ridge", prior_p=4.0,
           lambdas=tuple(float(lam) for lam in 10.0 ** np.arange(-11.0, -5.0)))  # λ relative to mean(diag G)
# the recipe of the published fits (ACEpotentials' defaults): total degree with w_L = 1.5, Agnesi-transformed radial
# basis with one r_0 per element pair, algebraic smoothness prior p = 4 — measured worse here so far
PUBLISHED_RECIPE = dict(r_max=5.0, n_max=12, l_max=4, max_degree=(12, 11, 9), radial="agnesi", r_0=None,
                        l_weight=1.5)
PUBLISHED_FIT = dict(energy_weight=30.0, forces_weight=1.0, prior="smoothness", prior_p=4.0)


def load_protocol(name=None, n_train=950, n_valid=50, n_test=None, r_max=5.0, train_file=None, test_file=None,
                  e0s_file=None, energy_key="energy", forces_key="forces"):
    """Train, validation and test graphs and E0s: an rMD17 molecule of the shared folder (``name``) or any
    extxyz files (``train_file``, ``test_file``; E0s from ``e0s_file`` or the isolated atoms of the train file).

    The first ``n_train + n_valid`` configurations of the training file are split in order (rMD17 protocol).
    """
    from .data import KeySpec, read_configurations, split_isolated_atoms

    keys = KeySpec(energy_key=energy_key, forces_key=forces_key)
    if train_file is None:
        from .datasets import load_shared, shared_e0s

        if name not in RMD17:
            raise ValueError(f"name must be one of {sorted(RMD17)} (or give train_file), got {name!r}")
        configs = load_shared(RMD17[name], "train", index=f":{n_train + n_valid}")
        test = load_shared(RMD17[name], "test", index=":" if n_test is None else f":{n_test}")
        e0s = shared_e0s(RMD17[name])
    else:
        if test_file is None:
            raise ValueError("train_file needs test_file")
        e0s, configs = split_isolated_atoms(read_configurations(train_file, keys))
        configs = configs[: n_train + n_valid]
        test = [c for c in read_configurations(test_file, keys) if len(c) > 1]
        test = test if n_test is None else test[:n_test]
        if e0s_file is not None:
            e0s, _ = split_isolated_atoms(read_configurations(e0s_file, keys, required=("energy",)))
    if len(configs) < n_train + n_valid:
        raise ValueError(f"{len(configs)} training configurations, fewer than n_train + n_valid = {n_train + n_valid}")
    graphs = [c.to_graph(r_max) for c in configs]
    test_graphs = [c.to_graph(r_max) for c in test]
    elements = sorted({int(z) for c in configs for z in c.atomic_numbers})
    missing = [z for z in elements if e0s and z not in e0s]
    if missing:
        raise ValueError(f"no isolated-atom energy for Z={missing}")
    return graphs[:n_train], graphs[n_train:], test_graphs, {z: e0s[z] for z in elements if z in e0s}, elements


def fit_rmd17(name="ethanol", n_train=950, n_valid=50, n_test=None, r_max=5.0, **kwargs):
    """Fit a :class:`LinearACE` on the first ``n_train + n_valid`` training configurations of an rMD17
    molecule from the shared data folder (E0s: PBE/def2-SVP isolated atoms) and report MAEs.

    ``kwargs``: basis settings (:class:`ACEBasis`) and fit settings (``energy_weight``, ``forces_weight``,
    ``lambdas``, ``prior``, ``prior_p``); ``train_file``/``test_file``/``e0s_file``/``energy_key``/
    ``forces_key`` for another data set (see :func:`load_protocol`).

    Returns
    -------
    (LinearACE, dict)
        The model and ``{"valid": ..., "test": ...}`` error reports (see :func:`mae_report`).
    """
    data_keys = {k: kwargs.pop(k) for k in ("train_file", "test_file", "e0s_file", "energy_key", "forces_key")
                 if k in kwargs}
    train, valid, test, e0s, elements = load_protocol(name, n_train, n_valid, n_test, r_max, **data_keys)
    fit_keys = {k: kwargs.pop(k) for k in list(kwargs) if k.endswith("_weight") and k != "l_weight"
                or k in ("lambdas", "prior", "prior_p")}
    model = LinearACE(elements, e0s=e0s, r_max=r_max, **kwargs)
    model.fit(train, valid, **fit_keys)
    report = {"valid": mae_report(model, valid), "test": mae_report(model, test)}
    return model, report


def peak_rss_gib() -> float:
    """Peak resident memory of this process (GiB), from getrusage."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv=None):
    """``python -m minimace.ace ethanol --json results.json`` — fit a linear ACE and report test errors."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("name", nargs="?", choices=sorted(RMD17), help="rMD17 molecule of the shared data folder")
    parser.add_argument("--train-file", help="extxyz training file (instead of NAME): the first n-train + n-valid")
    parser.add_argument("--test-file", help="extxyz test file (with --train-file)")
    parser.add_argument("--e0s-file", help="extxyz file of isolated atoms (default: those in the train file)")
    parser.add_argument("--energy-key", default="energy")
    parser.add_argument("--forces-key", default="forces")
    parser.add_argument("--n-train", type=int, default=950)
    parser.add_argument("--n-valid", type=int, default=50)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--r-max", type=float, default=RECIPE["r_max"])
    parser.add_argument("--n-max", type=int, default=RECIPE["n_max"])
    parser.add_argument("--l-max", type=int, default=RECIPE["l_max"])
    parser.add_argument("--max-degree", type=float, nargs="+", default=list(RECIPE["max_degree"]))
    parser.add_argument("--l-weight", type=float, default=RECIPE["l_weight"])
    parser.add_argument("--radial", choices=["bessel", "chebyshev", "agnesi"], default=RECIPE["radial"])
    parser.add_argument("--r-0", type=float, default=None, help="transform scale (Å); default: bond lengths")
    parser.add_argument("--energy-weight", type=float, default=FIT["energy_weight"])
    parser.add_argument("--forces-weight", type=float, default=FIT["forces_weight"])
    parser.add_argument("--prior", choices=PRIORS, default=FIT["prior"])
    parser.add_argument("--prior-p", type=float, default=FIT["prior_p"])
    parser.add_argument("--lambdas", type=float, nargs="+", default=list(FIT["lambdas"]))
    parser.add_argument("--json", help="write the test errors, basis size and fit time to this JSON file")
    parser.add_argument("--save", help="write the fitted model here (LinearACE.load / ACECalculator)")
    args = parser.parse_args(argv)
    if args.name is None and args.train_file is None:
        parser.error("give NAME (ethanol, aspirin) or --train-file/--test-file")
    r_0 = args.r_0 if args.r_0 is not None else (None if args.radial == "agnesi" else 1.0)
    start, cpu = time.perf_counter(), time.process_time()
    model, report = fit_rmd17(
        args.name, args.n_train, args.n_valid, args.n_test, r_max=args.r_max, n_max=args.n_max, l_max=args.l_max,
        max_degree=tuple(args.max_degree), radial=args.radial, r_0=r_0, l_weight=args.l_weight,
        energy_weight=args.energy_weight, forces_weight=args.forces_weight, prior=args.prior, prior_p=args.prior_p,
        lambdas=args.lambdas, **({"train_file": args.train_file, "test_file": args.test_file,
                                  "e0s_file": args.e0s_file} if args.train_file else {}),
        energy_key=args.energy_key, forces_key=args.forces_key,
    )
    info = {k: v for k, v in model.fit_info.items() if not isinstance(v, dict)}
    test = report["test"]
    summary = {
        "test_E_MAE_meV": test["energy_mae_meV"], "test_F_MAE_meV_per_A": test["forces_mae_meV_per_A"],
        "test_E_RMSE_meV": test["energy_rmse_meV"], "test_F_RMSE_meV_per_A": test["forces_rmse_meV_per_A"],
        "n_basis": info["num_features"], "fit_seconds": info["total_seconds"], "fit_cpu_seconds": info["cpu_seconds"],
        "total_seconds": time.perf_counter() - start, "total_cpu_seconds": time.process_time() - cpu,
        "peak_rss_GiB": peak_rss_gib(), "torch_threads": torch.get_num_threads(), "lambda": info["lambda"],
        "counts": model.basis.counts(), "settings": {k: v for k, v in vars(args).items() if k not in ("json", "save")},
        "valid": report["valid"], "test": test,
        "validation_errors": {str(k): v for k, v in model.fit_info["validation_errors"].items()},
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    if args.save:
        model.save(args.save)


if __name__ == "__main__":
    main()
