"""The linear Atomic Cluster Expansion (Drautz 2019), the special case of MACE with one layer and no learning
inside the basis: MACE paper (Batatia et al. 2022, arXiv:2206.07697) Eqs. (7)–(10) with fixed radial functions,
and an energy linear in the invariant B-functions,

    E = Σ_i ( E0_{z_i} + Σ_η c_{z_i, η} B_{i, η} ),                                                 (ACE)

fitted by (ridge) linear least squares on energies and forces.

The basis, stage by stage:

* one-particle basis (Eq. 7):  φ_{nzlm}(r_ij, z_j) = R_n(r_ij) Y_lm(r̂_ij) δ_{z z_j} — Bessel functions times the
  polynomial envelope (``radial.py``), one channel k = (n, z) per radial index and neighbour element;
* atomic basis (Eq. 8):        A_{i,nzlm} = Σ_{j ∈ N(i)} φ_{nzlm}(r_ij, z_j);
* B-functions (Eq. 10, L = 0): for a multiset of labels v_ξ = (n_ξ, z_ξ, l_ξ), ξ = 1..ν,
  B_{i,η} = Σ_m C^{00}_{η, v m} Π_ξ A_{i, v_ξ m_ξ}, with ``symmetric.coupling_block`` giving the coupling
  coefficients symmetric under permutations of equal labels (so each B-function appears once).
  Full ACE products mix channels (unlike MACE's per-channel products) and are selected by the total degree
  Σ_ξ (n_ξ + 1 + l_ξ) <= max_degree[ν - 1] ("sparse" ACE). ν = 0 is the constant (one-body) term.

Forces are linear in the same coefficients: F = −∂E/∂r = −Σ c ∂B/∂r. The rows −∂B/∂r of the least-squares
system come from forward-mode automatic differentiation (``torch.func.jvp``), one tangent per Cartesian
coordinate of an atom, for all configurations of a batch at once (configurations are disconnected graphs).

Command line (rMD17 protocol from the shared data folder: 950 train + 50 validation, test set)::

    python -m minimace.ace ethanol                       # n_max 8, l_max 3, degrees (8, 12, 10): 8754 coefficients
    python -m minimace.ace aspirin --n-test 200 --max-degree 8 10 8   # a smaller basis (3573 coefficients)

Limitations: the fit forms the normal matrix of size (n_elements · num_basis)², and the force rows cost one
forward-mode pass per Cartesian coordinate of the largest structure in a batch — fine for molecules of tens of
atoms, slow for large periodic cells.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .radial import BesselBasis, PolynomialCutoff
from .so3 import spherical_harmonics
from .symmetric import coupling_block

__all__ = ["ACEBasis", "LinearACE", "design_matrix", "mae_report", "fit_rmd17"]


@dataclass
class _Group:
    """B-functions sharing degrees and label pattern: one contraction for all of them."""

    ls: tuple[int, ...]
    coupling: torch.Tensor  # [n_inv, 2l_1+1, ..., 2l_ν+1]
    channels: list = field(default_factory=list)  # one tuple (k_1, ..., k_ν) per member


def _label_multisets(labels, nu, max_degree):
    """Sorted ν-multisets of label indices with Σ degree <= max_degree (labels sorted by degree)."""
    degrees = [n + 1 + l for n, _, l in labels]

    def extend(prefix, start, budget):
        if len(prefix) == nu:
            yield tuple(prefix)
            return
        for a in range(start, len(labels)):
            if degrees[a] * (nu - len(prefix)) > budget:  # the rest are at least as costly
                break
            yield from extend(prefix + [a], a, budget - degrees[a])

    return extend([], 0, max_degree)


class ACEBasis(torch.nn.Module):
    """Invariant ACE B-functions of every atom (no trainable parameters).

    Parameters
    ----------
    atomic_numbers : sequence of int
        Elements z (neighbour channels and centre elements).
    r_max : float
        Cutoff radius (Å), one for all orders.
    n_max : int
        Number of radial functions R_n (Bessel × envelope).
    l_max : int
        Largest degree of the spherical harmonics.
    max_degree : sequence of int
        ``max_degree[ν-1]`` bounds Σ_ξ (n_ξ + 1 + l_ξ) of the B-functions of order ν; its length is the
        largest correlation order.
    num_polynomial_cutoff : int
        Order p of the envelope.
    radial : str
        ``"bessel"``: R_n = j_n(r) f_p(r) (MACE's radial features, ``radial.py``); ``"chebyshev"``:
        R_n = T_{n}(x(r)) f_p(r), Chebyshev polynomials of a distance transform
        y = 1 / (1 + (r / r_0)²) mapped to x ∈ [-1, 1] on [0, r_max], which puts more resolution at bond
        lengths (the usual choice of linear ACE codes, with ``r_0`` about a bond length).
    r_0 : float
        Scale of the distance transform (Å), for ``radial="chebyshev"``.
    """

    def __init__(self, atomic_numbers, r_max=5.0, n_max=8, l_max=3, max_degree=(8, 10, 8), num_polynomial_cutoff=5,
                 radial="bessel", r_0=1.0):
        super().__init__()
        if radial not in ("bessel", "chebyshev"):
            raise ValueError(f"radial must be 'bessel' or 'chebyshev', got {radial!r}")
        self.radial, self.r_0 = radial, float(r_0)
        self.atomic_numbers = [int(z) for z in atomic_numbers]
        self.r_max, self.n_max, self.l_max = float(r_max), int(n_max), int(l_max)
        self.max_degree = tuple(int(m) for m in max_degree)
        self.bessel = BesselBasis(r_max, n_max)
        self.cutoff = PolynomialCutoff(r_max, num_polynomial_cutoff)
        self.register_buffer("z_to_index", torch.full((max(self.atomic_numbers) + 1,), -1, dtype=torch.long))
        self.z_to_index[self.atomic_numbers] = torch.arange(len(self.atomic_numbers))
        n_el = len(self.atomic_numbers)
        labels = sorted(
            ((n, e, l) for n in range(n_max) for e in range(n_el) for l in range(l_max + 1)),
            key=lambda v: (v[0] + 1 + v[2], v),
        )
        self.groups: dict[tuple, _Group] = {}
        for nu, budget in enumerate(self.max_degree, start=1):
            for multiset in _label_multisets(labels, nu, budget):
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

    def counts(self) -> dict[int, int]:
        """Number of B-functions of each correlation order ν (ν = 0: the constant)."""
        out = {0: 1}
        for (ls, _), size in zip(self.groups, self.sizes):
            out[len(ls)] = out.get(len(ls), 0) + size
        return out

    def radial_functions(self, lengths: torch.Tensor) -> torch.Tensor:
        """R_n(r) of the one-particle basis: ``lengths`` [n_edges, 1] -> [n_edges, n_max]."""
        if self.radial == "bessel":
            return self.bessel(lengths) * self.cutoff(lengths)
        y = 1.0 / (1.0 + (lengths / self.r_0) ** 2)  # (y_min, 1] on [0, r_max)
        y_min = 1.0 / (1.0 + (self.r_max / self.r_0) ** 2)
        x = 2.0 * (y - y_min) / (1.0 - y_min) - 1.0  # [-1, 1]
        T = [torch.ones_like(x), x]
        for _ in range(2, self.n_max):
            T.append(2.0 * x * T[-1] - T[-2])  # Chebyshev recursion T_{n+1} = 2x T_n - T_{n-1}
        return torch.cat(T[: self.n_max], dim=-1) * self.cutoff(lengths)  # [n_edges, n_max]

    def atomic_basis(self, positions, atomic_numbers, edge_index, shifts) -> torch.Tensor:
        """A_{i, (n, z), lm} = Σ_j R_n(r_ij) Y_lm(r̂_ij) δ_{z z_j} (Eq. 8): [n_atoms, n_max * n_elements, d]."""
        i, j = edge_index
        vectors = positions[j] - positions[i] + shifts  # [n_edges, 3]
        lengths = torch.linalg.norm(vectors, dim=-1, keepdim=True)  # [n_edges, 1]
        radial = self.radial_functions(lengths)  # [n_edges, n_max]
        Y = spherical_harmonics(self.l_max, vectors, normalize=True)  # [n_edges, d]
        onehot = torch.nn.functional.one_hot(self.z_to_index[atomic_numbers[j]], len(self.atomic_numbers))
        phi = radial[:, :, None, None] * onehot[:, None, :, None].to(Y.dtype) * Y[:, None, None, :]
        phi = phi.reshape(len(j), -1, Y.shape[-1])  # [n_edges, n_max * n_el, d], channel k = n * n_el + z
        A = torch.zeros((positions.shape[0],) + phi.shape[1:], dtype=phi.dtype, device=phi.device)
        return A.index_add(0, i, phi)  # [n_atoms, K, d]

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


def design_matrix(basis: ACEBasis, batch: dict, forces: bool):
    """Energy rows X [B, n_el * num_basis] and force rows J = −∂X/∂r [N, 3, n_el * num_basis] of a batch."""
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
    rows = []
    for a in range(int(n_atoms.max())):  # perturb atom a of every graph at once
        for alpha in range(3):
            tangent = torch.zeros_like(positions)
            tangent[local == a, alpha] = 1.0
            X, dX = torch.func.jvp(energy_features, (positions,), (tangent,))  # dX [B, n_feat]
            rows.append(dX)
    dX = torch.stack(rows).reshape(int(n_atoms.max()), 3, n_graphs, -1)  # [a, α, B, n_feat]
    J = -dX[local, :, batch["batch"]]  # [N, 3, n_feat]: atom t is atom local[t] of graph batch[t]
    return X, J


class LinearACE:
    """Linear ACE potential: E = Σ_i (E0_{z_i} + Σ_η c_{z_i,η} B_{i,η}), ridge fit on energies and forces.

    Parameters
    ----------
    atomic_numbers : sequence of int
        Elements.
    e0s : dict[int, float], optional
        Isolated-atom energies E0_z (eV); zero when not given (the constant B-function fits them).
    **basis_kwargs
        Passed to :class:`ACEBasis` (``r_max``, ``n_max``, ``l_max``, ``max_degree``, ...).

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

    def _rows(self, graphs, energy_weight, forces_weight, batch_size=50):
        """Yield weighted least-squares rows (matrix, target) batch by batch."""
        from .graph import batch_graphs

        for start in range(0, len(graphs), batch_size):
            batch = batch_graphs(graphs[start : start + batch_size])
            X, J = design_matrix(self.basis, batch, forces=True)
            n_atoms = (batch["ptr"][1:] - batch["ptr"][:-1]).to(torch.float64)  # [B]
            w_e = energy_weight / n_atoms.sqrt()  # energy rows: per-atom-like weight
            y_e = batch["energy"] - self._e0(batch)
            rows = torch.cat([X * w_e[:, None], forces_weight * J.reshape(-1, X.shape[1])])
            target = torch.cat([y_e * w_e, forces_weight * batch["forces"].reshape(-1)])
            yield rows, target, (X, J, batch)

    def fit(self, train_graphs, valid_graphs, energy_weight=30.0, forces_weight=1.0, lambdas=None, batch_size=50):
        """Ridge least squares on energies and forces; λ chosen by the validation error.

        Parameters
        ----------
        train_graphs, valid_graphs : list of dict
            Graphs with ``energy`` and ``forces`` labels (``minimace.graph.atoms_to_graph`` with
            ``r_max >= basis.r_max``).
        energy_weight, forces_weight : float
            Row weights: energy rows are ``energy_weight / sqrt(n_atoms)`` times (E − ΣE0), force rows
            ``forces_weight`` times F.
        lambdas : sequence of float, optional
            Ridge strengths relative to the unit diagonal of the column-normalised normal matrix.
            The one with the lowest validation loss (same weights as the fit) is kept.

        Returns
        -------
        LinearACE
            self, fitted.
        """
        lambdas = list(lambdas if lambdas is not None else 10.0 ** np.arange(-12, -1))
        start = time.perf_counter()
        G, b = None, None
        for rows, target, _ in self._rows(train_graphs, energy_weight, forces_weight, batch_size):
            G = rows.T @ rows if G is None else G + rows.T @ rows  # normal matrix [n_feat, n_feat]
            b = rows.T @ target if b is None else b + rows.T @ target
        t_design = time.perf_counter() - start
        scale = G.diagonal().sqrt()
        scale[scale == 0] = 1.0  # unused columns (absent elements) stay zero through the ridge term
        evals, Q = torch.linalg.eigh(G / scale[:, None] / scale[None, :])
        qb = Q.T @ (b / scale)
        valid = [(rows, target) for rows, target, _ in self._rows(valid_graphs, energy_weight, forces_weight)]
        scores = []
        for lam in lambdas:
            c = (Q @ (qb / (evals.clamp_min(0) + lam))) / scale
            scores.append(sum(float(((rows @ c - target) ** 2).sum()) for rows, target in valid))
        best = int(np.argmin(scores))
        c = (Q @ (qb / (evals.clamp_min(0) + lambdas[best]))) / scale
        self.coefficients = c.reshape(len(self.basis.atomic_numbers), -1)  # [n_el, num_basis]
        self.fit_info = {
            "lambda": lambdas[best],
            "validation_loss": dict(zip(lambdas, scores)),
            "num_features": int(G.shape[0]),
            "design_seconds": t_design,
            "total_seconds": time.perf_counter() - start,
        }
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
        """Energies [B] (eV) and forces [N, 3] (eV/Å) of the graphs, concatenated."""
        from .graph import batch_graphs

        c = self.coefficients.reshape(-1)
        energies, all_forces = [], []
        for start in range(0, len(graphs), batch_size):
            batch = batch_graphs(graphs[start : start + batch_size])
            X, J = design_matrix(self.basis, batch, forces=forces)
            energies.append(X @ c + self._e0(batch))
            if forces:
                all_forces.append(J @ c)  # [N, 3]
        out = {"energy": torch.cat(energies)}
        if forces:
            out["forces"] = torch.cat(all_forces)
        return out


def mae_report(model: LinearACE, graphs) -> dict:
    """Mean absolute errors on labelled graphs: energy (meV, total and per atom) and forces (meV/Å)."""
    from .graph import batch_graphs

    pred = model.predict(graphs)
    ref = batch_graphs(graphs)
    n_atoms = (ref["ptr"][1:] - ref["ptr"][:-1]).to(torch.float64)
    dE = (pred["energy"] - ref["energy"]).abs()
    return {
        "energy_mae_meV": 1000 * float(dE.mean()),
        "energy_per_atom_mae_meV": 1000 * float((dE / n_atoms).mean()),
        "forces_mae_meV_per_A": 1000 * float((pred["forces"] - ref["forces"]).abs().mean()),
        "n_configs": len(graphs),
    }


RMD17 = {"ethanol": "botnet_ethanol", "aspirin": "rmd17_aspirin"}  # molecule -> shared data set (datasets.py)


def fit_rmd17(name="ethanol", n_train=950, n_valid=50, n_test=None, r_max=5.0, **kwargs):
    """Fit a :class:`LinearACE` on the first ``n_train + n_valid`` training configurations of an rMD17
    molecule from the shared data folder (E0s: PBE/def2-SVP isolated atoms) and report MAEs.

    Returns
    -------
    (LinearACE, dict)
        The model and ``{"train": ..., "valid": ..., "test": ...}`` MAE reports (see :func:`mae_report`).
    """
    from .datasets import load_shared, shared_e0s

    configs = load_shared(RMD17[name], "train", index=f":{n_train + n_valid}")
    test = load_shared(RMD17[name], "test", index=":" if n_test is None else f":{n_test}")
    e0s = shared_e0s(RMD17[name])
    graphs = [c.to_graph(r_max) for c in configs]
    test_graphs = [c.to_graph(r_max) for c in test]
    elements = sorted({int(z) for c in configs for z in c.atomic_numbers})
    weights = {k: kwargs.pop(k) for k in list(kwargs) if k.endswith("_weight")}
    model = LinearACE(elements, e0s={z: e0s[z] for z in elements}, r_max=r_max, **kwargs)
    model.fit(graphs[:n_train], graphs[n_train:], **weights)
    report = {
        "train": mae_report(model, graphs[:n_train]),
        "valid": mae_report(model, graphs[n_train:]),
        "test": mae_report(model, test_graphs),
    }
    return model, report


def main(argv=None):
    """``python -m minimace.ace ethanol --n-train 950`` — fit and print MAEs."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("name", choices=sorted(RMD17))
    parser.add_argument("--n-train", type=int, default=950)
    parser.add_argument("--n-valid", type=int, default=50)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--r-max", type=float, default=5.0)
    parser.add_argument("--n-max", type=int, default=8)
    parser.add_argument("--l-max", type=int, default=3)
    parser.add_argument("--max-degree", type=int, nargs="+", default=[8, 12, 10])
    parser.add_argument("--radial", choices=["bessel", "chebyshev"], default="bessel")
    parser.add_argument("--r-0", type=float, default=1.0)
    parser.add_argument("--energy-weight", type=float, default=30.0)
    parser.add_argument("--forces-weight", type=float, default=1.0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model, report = fit_rmd17(
        args.name, args.n_train, args.n_valid, args.n_test, r_max=args.r_max, n_max=args.n_max, l_max=args.l_max,
        max_degree=tuple(args.max_degree), radial=args.radial, r_0=args.r_0, energy_weight=args.energy_weight,
        forces_weight=args.forces_weight,
    )
    info = {k: v for k, v in model.fit_info.items() if k != "validation_loss"}
    print(json.dumps({"args": vars(args), "counts": model.basis.counts(), "fit": info, **report,
                      "seconds": time.perf_counter() - start}, indent=1))


if __name__ == "__main__":
    main()
