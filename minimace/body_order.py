r"""Body order and receptive field of MACE: how many atoms one term of a site energy involves, and which atoms.

MACE (Batatia et al. 2022, arXiv:2206.07697), Eq. 7: the message of layer t is a sum of ν-fold products over
neighbours j₁ … j_ν (self-interaction j₁ = j₂ included), and Eq. 8 makes each factor carry the features
h_j^{(t)} of a neighbour, which already depend on that neighbour's own environment. Counting the distinct atoms
one term can touch, with b_t the body order of h^{(t)} (b_0 = 1: h^{(0)} depends on z_i only),

    A_i^{(t+1)} = Σ_j φ(r_ij) h_j^{(t)}        one term: atom i and the b_t atoms of h_j^{(t)}  → 1 + b_t
    m_i^{(t+1)} = Π_{ξ=1}^{ν} A_i^{(t+1)}        ν such terms around the same i             → 1 + ν b_t

so b_{t+1} = 1 + ν b_t and b_T = 1 + ν + ν² + … + ν^T (ν may change with the layer). The update (Eq. 12) and
linear readouts (Eq. 13 for t < T) are linear, so the site energy of a model with linear readouts has body
order b_T exactly; minimace's last readout (Eq. 13, t = T) is an MLP, which makes the formal body order of E_i
unbounded: b_T is the body order of the features it reads.

:func:`many_body_terms` measures it: the cluster expansion of a function of a set of atoms,
g(U) = Σ_{V ⊆ U} (−1)^{|U|−|V|} f(V), vanishes for clusters U larger than the body order.

:func:`receptive_field` counts the atoms a T-layer model of cutoff r_c sees from each centre — those reached in
T hops of the r_c neighbour graph (Eq. 8 sums over neighbours, T times) — against the atoms within the sphere of
radius T·r_c that an ACE needs to see as far.
"""

from __future__ import annotations

import copy
import itertools
from typing import Callable, Sequence, Union

import numpy as np
import torch

from .graph import atoms_to_graph
from .readout import LinearReadout

__all__ = ["body_order", "body_order_table", "many_body_terms", "site_energy_on_subsets", "with_linear_readouts",
           "receptive_field"]


def body_order(correlation: Union[int, Sequence[int]], num_interactions: int) -> int:
    """Largest number of atoms (centre included) one term of h^{(T)}_i depends on: 1 + ν + ν² + … + ν^T.

    Parameters
    ----------
    correlation : int or sequence of int
        Correlation order ν of the product basis, one value or one per layer.
    num_interactions : int
        Number of layers T (≥ 0; T = 0 is the one-body term E0_{z_i}).

    Examples
    --------
    >>> body_order(3, 2)      # the paper's MACE: ν = 3, two layers
    13
    >>> body_order(1, 4)      # a two-body MPNN: one more atom per layer
    5
    """
    if num_interactions < 0:
        raise ValueError(f"num_interactions must be >= 0, got {num_interactions}")
    nus = [correlation] * num_interactions if isinstance(correlation, int) else list(correlation)
    if len(nus) != num_interactions:
        raise ValueError(f"{len(nus)} correlation orders given for {num_interactions} layers")
    if any(nu < 1 for nu in nus):
        raise ValueError(f"correlation orders must be >= 1, got {nus}")
    b = 1
    for nu in nus:
        b = 1 + nu * b
    return b


def body_order_table(correlations: Sequence[int] = (1, 2, 3, 4), layers: Sequence[int] = (1, 2, 3)) -> dict:
    """{ν: {T: body order}} for every pair (the table of the lesson)."""
    return {nu: {T: body_order(nu, T) for T in layers} for nu in correlations}


def many_body_terms(energy: Callable[[Sequence[int]], float], centre: int, others: Sequence[int]) -> dict:
    """Cluster expansion of a site energy: the largest |g(U)| for each cluster size |U|.

    Parameters
    ----------
    energy : callable
        ``energy(atoms)`` → the site energy of ``centre`` computed with only the atoms of the list present
        (``centre`` is always in it).
    centre : int
        The atom whose energy is expanded.
    others : sequence of int
        The neighbours to expand over (2^len(others) evaluations).

    Returns
    -------
    dict
        {n: max over clusters U of n atoms (centre included) of |g(U)|}, n = 1 … len(others) + 1, with
        g(U) = Σ_{V ⊆ U, centre ∈ V} (−1)^{|U|−|V|} energy(V). A function of body order b has g = 0 (to
        rounding) for every n > b.
    """
    others = list(others)
    values = {}
    for size in range(len(others) + 1):
        for subset in itertools.combinations(others, size):
            values[subset] = float(energy([centre, *subset]))
    largest = {}
    for subset in values:
        g = sum((-1) ** (len(subset) - size) * values[sub]
                for size in range(len(subset) + 1) for sub in itertools.combinations(subset, size))
        n = len(subset) + 1
        largest[n] = max(largest.get(n, 0.0), abs(g))
    return dict(sorted(largest.items()))


def site_energy_on_subsets(model, atoms, dtype: torch.dtype = torch.float64) -> Callable[[Sequence[int]], float]:
    """``energy(indices)`` → E_i of the first atom of ``indices`` when only the atoms ``indices`` are present."""
    r_max = float(model.config["r_max"])

    def energy(indices: Sequence[int]) -> float:
        graph = atoms_to_graph(atoms[list(indices)], r_max, dtype=dtype)
        return float(model(graph, compute_forces=False)["node_energy"][0].detach())

    return energy


def with_linear_readouts(model):
    """A copy of ``model`` whose last readout is linear too, so that E_i has body order b_T (the others are)."""
    model = copy.deepcopy(model)
    dtype = model.embedding.weight.dtype
    model.readouts[-1] = LinearReadout(model.updates[-1].irreps_out).to(dtype)
    return model


def receptive_field(atoms, r_c: float, num_interactions: int) -> dict:
    """Per centre atom: the atoms within T hops of the r_c graph, and the atoms within the sphere of radius T·r_c.

    Periodic images count as distinct atoms (an image is reached through its own chain of neighbours).

    Parameters
    ----------
    atoms : ase.Atoms
        The structure (molecule or periodic cell).
    r_c : float
        Cutoff of one layer (Å).
    num_interactions : int
        Number of layers T.

    Returns
    -------
    dict
        ``hops`` [n_atoms] (int): atoms, the centre included, on which E_i of a T-layer message-passing model of
        cutoff r_c can depend; ``sphere`` [n_atoms]: atoms, the centre included, within T·r_c (what an ACE of that
        cutoff sees); ``neighbours`` [n_atoms]: atoms within r_c, the centre excluded.
    """
    graph = atoms_to_graph(atoms, r_c)
    centre, neighbour = graph["edge_index"].numpy()
    shifts = graph["unit_shifts"].numpy().astype(int)  # [n_edges, 3]
    n = len(atoms)
    adjacency = [[] for _ in range(n)]
    for a, b, s in zip(centre, neighbour, map(tuple, shifts)):
        adjacency[a].append((b, s))
    hops = np.zeros(n, dtype=int)
    for i in range(n):
        seen = frontier = {(i, (0, 0, 0))}
        for _ in range(num_interactions):
            frontier = {(b, (n0 + s[0], n1 + s[1], n2 + s[2])) for a, (n0, n1, n2) in frontier
                        for b, s in adjacency[a]} - seen
            seen = seen | frontier
        hops[i] = len(seen)
    far = atoms_to_graph(atoms, num_interactions * r_c)["edge_index"][0].numpy()
    return {"hops": hops, "sphere": 1 + np.bincount(far, minlength=n),
            "neighbours": np.bincount(centre, minlength=n)}
