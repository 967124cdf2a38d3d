# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["remove-cell"]
# Colab only (does nothing elsewhere): install minimace and fetch the data of this lesson.
import sys
if "google.colab" in sys.modules:
    import subprocess
    packages = ["git+https://github.com/minimace/minimace"]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *packages], check=True)
    subprocess.run(["minimace", "download", "botnet_ethanol"], check=True)

# %% [markdown]
# # 02 — The atomic basis $A_i$: a sum over neighbours
#
# **What you will learn**
# - the neighbourhood $\mathcal N(i)$ of an atom in a real molecule (ethanol: the PBE/def2-SVP set of the shared
#   data folder when it is there, else the GFN2-xTB set bundled with minimace) as a list of edges $(i, j)$ with
#   vectors $\mathbf r_{ij} = \mathbf r_j - \mathbf r_i$;
# - the atomic basis $A_{i,klm} = \sum_{j \in \mathcal N(i)} \phi_{klm}(\mathbf r_{ij}, z_j)$ (the first-layer
#   A of MACE, Eq. 9), computed edge-wise and summed with a scatter;
# - why $A_i$ is invariant to the order of the neighbours, translation invariant and rotation equivariant —
#   checked with `assert_equivariant`;
# - MACE's interaction block (`AtomicBasis`, Eq. 8), where the neighbour's features $h_j$ replace the chemical
#   embedding and Clebsch–Gordan coefficients couple them with $Y_l^m$.
#
# **Prerequisites**: notebook 01 (the one-particle basis φ).
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697 v2), Eqs. (8)–(9); Drautz, PRB 99, 014104
# (2019), Eq. (4) (project the neighbour density on the one-particle basis).

# %%
import os

import torch

from minimace.atomic_basis import AtomicBasis, scatter_sum
from minimace.data import DataError
from minimace.datasets import bundled, load_shared
from minimace.graph import atoms_to_graph
from minimace.one_particle import ChemicalEmbedding, EdgeEmbedding
from minimace.so3 import Irreps
from minimace.testing import BATCH_ATOMS, BATCH_KINDS, assert_equivariant, permutation_within_graphs

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
dtype = torch.float64
torch.set_default_dtype(dtype)
torch.manual_seed(0)
r_max, num_bessel, p, lmax, k = 5.0, 8, 5, 3, 4
ELEMENTS = {1: 0, 6: 1, 8: 2}                              # H, C, O -> embedding index

# %% [markdown]
# ## 1. A real molecule and its neighbourhoods
#
# One ethanol configuration: from the real PBE/def2-SVP set `botnet_ethanol` when the shared data folder
# (`$MINIMACE_DATA`) holds it, else from the GFN2-xTB data bundled with minimace (a fresh clone: fetch the real
# set with `minimace download botnet_ethanol`). The cell prints which one it used.
# `atoms_to_graph` lists every pair closer than $r_c$ as an edge: `edge_index[0]` is the centre $i$,
# `edge_index[1]` the neighbour $j$.

# %%
try:
    config = load_shared("botnet_ethanol", "train", index=":1")[0]
    print("data: botnet_ethanol (PBE/def2-SVP) from the shared data folder")
except DataError:
    config = bundled("train", index=":1")[0]                  # the first bundled frame is an ethanol
    print("data: the bundled GFN2-xTB ethanol (botnet_ethanol not found; `minimace download botnet_ethanol` fetches it)")
assert sorted(config.atomic_numbers.tolist()) == [1] * 6 + [6] * 2 + [8]   # C2H5OH
graph = atoms_to_graph(config.to_atoms(), r_max)
i, j = graph["edge_index"]
r_ij = graph["positions"][j] - graph["positions"][i] + graph["shifts"]   # [n_edges, 3]
print("atoms:", config.atomic_numbers.tolist(), " edges:", i.numel())
print("neighbours per atom:", torch.bincount(i).tolist())
assert torch.all(r_ij.norm(dim=1) < r_max) and i.numel() == 9 * 8      # ethanol fits in one cutoff sphere

# %% [markdown]
# ## 2. $A_i$ as a sum over neighbours (Eq. 9)
#
# $$A_{i,klm} = \sum_{j\in\mathcal N(i)} \phi_{klm}(\mathbf r_{ij}, z_j),\qquad
# \phi_{klm} = j_k(r_{ij}) f_p(r_{ij})\, Y_l^m(\hat{\mathbf r}_{ij})\, h^{(0)}_{j,k}.$$
# Here the radial function of channel $k$ is simply the $k$-th Bessel feature (fixed, as in ACE); MACE
# learns it (section 5). Each edge gives one φ; `scatter_sum` adds the edges of each centre.

# %%
edge = EdgeEmbedding(r_max, num_bessel, p, lmax)
embedding = ChemicalEmbedding(len(ELEMENTS), k)
species = torch.tensor([ELEMENTS[int(z)] for z in graph["atomic_numbers"]])

def atomic_basis(positions, edge_index, shifts, species):
    i, j = edge_index
    Y, radial = edge(positions[j] - positions[i] + shifts)           # [n_edges, 16], [n_edges, 8]
    phi = radial[:, :k, None] * Y[:, None, :] * embedding(species)[j][:, :, None]   # [n_edges, k, 16]
    return scatter_sum(phi, i, positions.shape[0])                    # [n_atoms, k, 16]

A = atomic_basis(graph["positions"], graph["edge_index"], graph["shifts"], species)
print("A shape [n_atoms, k, (lmax+1)^2]:", tuple(A.shape))

# %% [markdown]
# *Line ↔ equation*: `phi` is $\phi_{klm}(\mathbf r_{ij}, z_j)$ for every edge; `scatter_sum(phi, i, …)` is
# $\sum_{j \in \mathcal N(i)}$. The same sum written as a plain loop over the neighbours of atom 0:

# %%
A0 = torch.zeros(k, 16)
for e in torch.nonzero(i == 0)[:, 0]:
    Y_e, radial_e = edge(r_ij[e:e + 1])
    A0 += radial_e[0, :k, None] * Y_e[0][None, :] * embedding(species[j[e]:j[e] + 1])[0][:, None]
assert torch.allclose(A[0], A0, atol=1e-13)
print("loop over neighbours == scatter sum:", (A[0] - A0).abs().max().item())

# %% [markdown]
# ## 3. Permutation invariance
#
# A sum does not depend on the order of its terms: shuffling the edges changes nothing, and relabelling the
# atoms only relabels the rows of $A$. This is why ACE and MACE need no sorting of neighbours.

# %%
order = torch.randperm(i.numel())
A_shuffled = atomic_basis(graph["positions"], graph["edge_index"][:, order], graph["shifts"][order], species)
assert torch.allclose(A, A_shuffled, atol=1e-13)
print("edges shuffled: max |ΔA| =", (A - A_shuffled).abs().max().item())

def A_of_batch(batch):                                      # the batch dict of docs/ARCHITECTURE.md -> A
    s = torch.tensor([ELEMENTS[int(z)] for z in batch["atomic_numbers"]])
    return atomic_basis(batch["positions"], batch["edge_index"], batch["shifts"], s)

report = assert_equivariant(A_of_batch, (graph,), (BATCH_KINDS,), None, atoms_in=(BATCH_ATOMS,),
                            atoms_out="atoms", tests=("permutation",),
                            permutation=permutation_within_graphs(graph["ptr"]))
print(report)

# %% [markdown]
# ## 4. Rotations, reflections, translations
#
# $\mathbf r_{ij}$ is a difference of positions (translation invariant) and $Y_l^m$ rotates with $D^l(R)$,
# so $A_{i,k l\cdot}$ rotates with $D^l(R)$ for every channel $k$. To call `assert_equivariant` we write $A$
# in e3nn's **mul_ir layout**: for each $l$, the $k$ channels of that $l$ one after the other —
# irreps `"4x0e+4x1o+4x2e+4x3o"`.

# %%
irreps_A = Irreps("+".join(f"{k}x{l}{'eo'[l % 2]}" for l in range(lmax + 1)))

def to_mul_ir(A):                                            # [n, k, 16] -> [n, irreps_A.dim]
    return torch.cat([A[:, :, l * l:(l + 1) ** 2].reshape(A.shape[0], -1) for l in range(lmax + 1)], dim=1)

print("irreps of A:", irreps_A, " dim", irreps_A.dim)
print(assert_equivariant(lambda b: to_mul_ir(A_of_batch(b)), (graph,), (BATCH_KINDS,), str(irreps_A),
                         tests=("rotation", "reflection", "translation")))

# %% [markdown]
# Negative control: forgetting the parity — declaring the $l = 1$ block even — must fail under reflections.

# %%
wrong = str(irreps_A).replace("1o", "1e")
try:
    assert_equivariant(lambda b: to_mul_ir(A_of_batch(b)), (graph,), (BATCH_KINDS,), wrong, tests=("reflection",))
    raise RuntimeError("the wrong parity was not detected")
except AssertionError:
    print("wrong parity detected, as it should be")

# %% [markdown]
# ## 5. MACE's interaction block
#
# In MACE the chemical embedding is the first layer's node feature $h^{(0)}_j$, and at layer $t$ the
# neighbour's features $h^{(t)}_j$ (any irreps) are coupled with $Y(\hat{\mathbf r}_{ij})$ through
# Clebsch–Gordan coefficients, with a learned radial weight $R^{(t)}_{k l_1 l_2 l_3}(r_{ij})$ per channel and path:
# $$A^{(t)}_{i,kl_3m_3} = \sum_{\tilde k} \frac{W_{k\tilde k l_3}}{\bar n}\sum_{j\in\mathcal N(i)}\sum_{l_1m_1,l_2m_2}
# C^{l_3m_3}_{l_1m_1,l_2m_2} R^{(t)}_{\tilde k l_1l_2l_3}(r_{ij})\, Y^{m_1}_{l_1}(\hat{\mathbf r}_{ij})\, \sum_{k'} W_{\tilde k k'} h^{(t)}_{j,k' l_2m_2}.$$
# `AtomicBasis` implements it (the first layer also multiplies by element-dependent weights). The paper's
# Eq. (8) has the linear map only on $h_j$, before the sum, and none after it; minimace follows mace-torch,
# which also mixes the channels after the sum ($W_{k\tilde k l_3}/\bar n$).

# %%
channels = 8
block = AtomicBasis(node_irreps=f"{channels}x0e", max_ell=lmax, target_irreps=f"{channels}x0e+{channels}x1o+"
                    f"{channels}x2e+{channels}x3o", num_bessel=num_bessel, radial_MLP=[32, 32],
                    avg_num_neighbors=8.0, num_elements=len(ELEMENTS), first_layer=True)
h0 = ChemicalEmbedding(len(ELEMENTS), channels)

def mace_A(batch):
    s = torch.tensor([ELEMENTS[int(z)] for z in batch["atomic_numbers"]])
    i, j = batch["edge_index"]
    Y, radial = edge(batch["positions"][j] - batch["positions"][i] + batch["shifts"])
    return block(h0(s), s, Y, radial, batch["edge_index"])          # [n_atoms, target_irreps.dim]

print("MACE A shape:", tuple(mace_A(graph).shape), "=", block.target_irreps)
print(assert_equivariant(mace_A, (graph,), (BATCH_KINDS,), str(block.target_irreps), atoms_in=(BATCH_ATOMS,),
                         atoms_out="atoms", permutation=permutation_within_graphs(graph["ptr"])))

# %% [markdown]
# *Line ↔ equation*: inside `block`, `linear_up` is $W_{\tilde k k'}$ on $h_j$, `radial_mlp` gives
# $R^{(t)}_{\tilde k l_1 l_2 l_3}$, `conv_tp` the Clebsch–Gordan coupling with $Y$, `scatter_sum` the
# neighbour sum and `linear` the mixing $W_{k\tilde k l_3}/\bar n$.
#
# **Summary** — $A_i$ is a permutation-invariant, rotation-equivariant "density" of the neighbours,
# projected on φ. Products of its components (notebook 03) give the many-body B-functions.
