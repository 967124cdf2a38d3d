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
# # 05 — Messages and the update (stages 4–5)
#
# **What you will learn**
# - how MACE turns the symmetric B-functions of one atom into its **message**
#   $m_{i,kLM} = \sum_\nu \sum_\eta W_{z_i kL,\eta} B^{(\nu)}_{i,\eta kLM}$ (Eq. 11), with weights that depend on
#   the element $z_i$ of the receiving atom;
# - why the module forms only the distinct entries of the $d^\nu$ product basis, with the same numbers;
# - the **update** $h^{(t+1)}_{i,kLM} = \sum_{\tilde k} W_{kL,\tilde k}\, m_{i,\tilde kLM}
#   + \sum_{\tilde k} W_{z_i kL,\tilde k}\, h^{(t)}_{i,\tilde kLM}$ (Eq. 12): a linear map per irrep plus an
#   element-dependent residual;
# - how to check each of them: against the equation written out, and with `assert_equivariant`.
#
# **Prerequisites**: notebooks 00 (rotations, $Y_l^m$), and the stages before this one: the one-particle basis
# $\phi = R\,Y$ (inside the sum of Eq. 8; radial basis in Appendix A.5), the atomic basis $A_i$ (Eq. 8), the
# product basis and the B-functions (Eq. 10).
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697 v2), Eqs. 8, 10, 11, 12; the equation map is
# `docs/paper_equations.md`.
# Every tensor below is computed on a real molecule: an rMD17 ethanol configuration (PBE/def2-SVP) from the
# shared data folder (`$MINIMACE_DATA`), or the bundled GFN2-xTB ethanol when that folder is absent.

# %%
import os

import torch

from minimace.data import DataError, average_num_neighbors
from minimace.datasets import bundled, load_shared
from minimace.model import MACE
from minimace.symmetric import b_functions, count_couplings
from minimace.testing import assert_equivariant
from minimace.update import Update

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
dtype = torch.float64
torch.manual_seed(0)
torch.set_printoptions(precision=4, linewidth=110)

# %% [markdown]
# ## 1. A real molecule and a small MACE
#
# We read one ethanol configuration and turn it into the batch dict of `docs/ARCHITECTURE.md` (neighbour list with
# cutoff $r_c = 5$ Å). The model is a MACE with $k = 8$ channels, hidden irreps $0e + 1o + 2e$, $l_{max} = 2$ and
# correlation order $\nu \le 3$; its weights are random (training comes later) — every identity checked below holds
# for any weights.

# %%
try:
    config, source = load_shared("botnet_ethanol", "train", index="0:1")[0], "rMD17 ethanol, PBE/def2-SVP"
except DataError:
    config, source = bundled("train", index="0:1")[0], "bundled ethanol, GFN2-xTB"
batch = config.to_graph(r_max=5.0, dtype=dtype)
n_bar = average_num_neighbors([batch])
model = MACE(r_max=5.0, max_ell=2, correlation=3, num_interactions=2, hidden_irreps="8x0e+8x1o+8x2e",
             MLP_irreps="8x0e", radial_MLP=[32, 32], avg_num_neighbors=n_bar, atomic_numbers=[1, 6, 8]).to(dtype)
print(source, "| atoms:", batch["atomic_numbers"].tolist(), "| edges:", batch["edge_index"].shape[1],
      "| n̄ =", round(n_bar, 3))
assert batch["positions"].shape == (9, 3) and n_bar == batch["edge_index"].shape[1] / 9

# %% [markdown]
# ## 2. The inputs of the message: the atomic basis $A_i$ of layer 1 (Eq. 8)
#
# We run the earlier stages with the model's own modules: species index $z_i$, the edge features $Y_{lm}(\hat r_{ij})$
# and $j_n(r_{ij}) f_p(r_{ij})$, the chemical embedding $h^{(0)}_i$ and the atomic basis $A^{(1)}_i$.

# %%
species = model.species(batch["atomic_numbers"])                              # [n_atoms]
centre, neighbour = batch["edge_index"]
vectors = batch["positions"][neighbour] - batch["positions"][centre] + batch["shifts"]   # r_ij [n_edges, 3]
Y, radial = model.edge_embedding(vectors)                                     # φ = R Y, inside Eq. 8
h0 = model.embedding(species)                                                 # h^(0)
A_flat = model.atomic_bases[0](h0, species, Y, radial, batch["edge_index"])   # Eq. 8
k, d = model.messages[0].num_channels, (model.messages[0].lmax + 1) ** 2
blocks = [A_flat[:, s].reshape(9, k, mi.ir.dim) for s, mi in zip(model.messages[0].irreps_in.slices(),
                                                                  model.messages[0].irreps_in)]
A = torch.cat(blocks, dim=-1)                                                 # [n_atoms, k, (lmax+1)^2]
print("Y   (φ, Eq. 8)", tuple(Y.shape), "    radial", tuple(radial.shape))
print("h0           ", tuple(h0.shape))
print("A   (Eq. 8)  ", tuple(A_flat.shape), "= [n_atoms, Σ_l k(2l+1)]  irreps", model.messages[0].irreps_in)
print("A per channel", tuple(A.shape), "= [n_atoms, k, d]")
assert A.shape == (9, 8, 9)

# %% [markdown]
# *Line ↔ equation*: `A_flat` is $A_{i,klm}$ in the "mul_ir" layout (all $k$ channels of $l=0$, then of $l=1$, …);
# `A` regroups it per channel $k$, because Eq. 10 multiplies the components of **one** channel
# together (the paper's Eq. 10 mixes channels inside the product; minimace, like mace-torch, does not).

# %% [markdown]
# ## 3. B-functions, one correlation order at a time (Eq. 10)
#
# $$ B^{(\nu)}_{i,\eta kLM} = \sum_{\mathbf{lm}} \mathcal C^{LM}_{\eta,\mathbf{lm}}
#    \prod_{\xi=1}^{\nu} A_{i,k l_\xi m_\xi}. $$
#
# The coupling tensors $\mathcal C$ (`U`) are stored in the message module, one per output irrep $L$ and order $\nu$.
# The number of paths $\eta$ is exactly the number of independent equivariant maps.

# %%
msg = model.messages[0]                                 # the message of layer 1
contraction = msg.contractions[0]                      # its output irrep L = 0e
B = {}
for nu in (1, 2, 3):
    U = contraction.U(nu)                                              # [2L+1, d, ..., d, n_paths]
    B[nu] = b_functions(A, U)                                          # [n_atoms, k, 2L+1, n_paths]
    n_paths = count_couplings(2, nu, 0, 1)
    print(f"ν={nu}: U {tuple(U.shape)}  B {tuple(B[nu].shape)}  paths η: {n_paths}")
    assert U.shape[-1] == n_paths == B[nu].shape[-1]

# %% [markdown]
# *Line ↔ equation*: `U` is $\mathcal C^{LM}_{\eta,\mathbf{lm}}$ with one $d$-index per factor of the product; the
# last axis is $\eta$. `b_functions` contracts one factor $A_{i,k l_\xi m_\xi}$ at a time.
#
# Layer 1 outputs every hidden irrep ($0e + 1o + 2e$), each with its own coupling tensors and weights; the last layer
# (layer 2) outputs scalars only, because only scalars reach the energy.

# %%
print("layer-1 message irreps:", msg.irreps_out, "| layer-2:", model.messages[1].irreps_out)
for c, mi in zip(msg.contractions, msg.irreps_out):
    print(f"  L={mi.ir}: paths per ν", [c.U(nu).shape[-1] for nu in (1, 2, 3)],
          "| weights W^(ν)", [tuple(w.shape) for w in c.weights])
assert [str(mi.ir) for mi in msg.irreps_out] == ["0e", "1o", "2e"]

# %% [markdown]
# ## 4. The message (Eq. 11)
#
# $$ m_{i,kLM} = \sum_{\nu=1}^{3} \sum_\eta W^{(\nu)}_{z_i kL,\eta}\, B^{(\nu)}_{i,\eta kLM}. $$
#
# Written out with `b_functions` and the weights of the module, element by element through `species`:

# %%
def message_by_the_equation(msg, A, species):
    out = []
    for c in msg.contractions:                                         # one output irrep L
        m_L = 0
        for nu in range(1, c.correlation + 1):
            B_nu = b_functions(A, c.U(nu))                             # [n_atoms, k, 2L+1, n_paths]
            W = c.weights[nu - 1][species]                             # [n_atoms, n_paths, k]: W_{z_i, η, k}
            m_L = m_L + torch.einsum("nkmp,npk->nkm", B_nu, W)         # Σ_η W B
        out.append(m_L.reshape(A.shape[0], -1))                        # [n_atoms, k(2L+1)]
    return torch.cat(out, dim=-1)                                      # [n_atoms, Σ_L k(2L+1)]

m_eq = message_by_the_equation(msg, A, species)
m = msg(A_flat, species)                                # the module
print("m (Eq. 11)", tuple(m.shape), "| max |module − equation| =", (m - m_eq).abs().max().item())
assert torch.allclose(m, m_eq, atol=1e-12, rtol=1e-12)

# %% [markdown]
# *Line ↔ equation*: `c.weights[nu-1][species]` is $W^{(\nu)}_{z_i kL,\eta}$ — one weight per element of the
# **receiving** atom, path $\eta$ and channel $k$. The module computes the same sums with fewer products: the product
# $\prod_\xi A_{i,k l_\xi m_\xi}$ does not depend on the order of its factors, so it is formed once per sorted index
# tuple $i_1 \le \dots \le i_\nu$, with $\mathcal C$ summed over the orderings of each tuple, and only for the tuples
# that $\mathcal C$ couples to (see `minimace/message.py`).

# %%
for nu in (1, 2, 3):
    n_tuples = getattr(contraction, f"monomials_{nu}").shape[0]         # sorted tuples the module forms for L=0
    print(f"ν={nu}: product basis per atom and channel has d^ν = {d ** nu:5d} entries, {n_tuples:3d} of them "
          f"formed for L=0; coupling paths for L=0: {count_couplings(2, nu, 0, 1)}")
    assert count_couplings(2, nu, 0, 1) <= n_tuples <= d ** nu
assert getattr(contraction, "monomials_3").shape[0] < d ** 3

# %% [markdown]
# ## 5. The message is equivariant
#
# If $A_i \mapsto D(R) A_i$ for every atom, then $m_i \mapsto D(R) m_i$ — for rotations and reflections (the
# parity of $1o$ flips its sign). It is also permutation equivariant: relabelling atoms relabels messages.

# %%
report = assert_equivariant(msg, (A_flat, species),
                            (str(msg.irreps_in), None), str(msg.irreps_out),
                            atoms_in=("atoms", "atoms"), atoms_out="atoms")
print(report)

# %% [markdown]
# A negative control: the check must fail for a message whose weights depend on the atom's **position in the list**
# rather than on its element (breaks permutation equivariance).

# %%
def bad_message(A, z):
    m = msg(A, z)
    return m * (1 + 0.1 * torch.arange(len(z), dtype=m.dtype))[:, None]

try:
    assert_equivariant(bad_message, (A_flat, species), (str(msg.irreps_in), None), str(msg.irreps_out),
                       atoms_in=("atoms", "atoms"), atoms_out="atoms")
    caught = False
except AssertionError as err:
    caught = "FAIL permutation" in str(err)
print("broken message caught by the permutation test:", caught)
assert caught

# %% [markdown]
# ## 6. The update (Eq. 12)
#
# $$ h^{(t+1)}_{i,kLM} = \sum_{\tilde k} W_{kL,\tilde k}\, m_{i,\tilde kLM}
#    + \sum_{\tilde k} W_{z_i kL,\tilde k}\, h^{(t)}_{i,\tilde kLM}. $$
#
# The first term (`update.linear`) mixes channels of the same irrep $L$ with a $k \times k$ matrix per $L$; the
# second (`update.self_connection`) does the same with a matrix per element $z_i$. As in the official implementation,
# the first layer has no residual (its element dependence sits on $A$ instead); layer 2 has one.

# %%
update1 = model.updates[0]
h1 = update1(m, h0, species)                                              # layer 1: h^(1) = W m
print("layer 1: residual?", update1.residual, "| h^(1)", tuple(h1.shape), "irreps", update1.irreps_out)
for (i, o, alpha), w in zip(update1.linear.instructions, update1.linear.weight_views()):
    mi = update1.linear.irreps_in[i]
    print(f"  W_(kL, k̃) for L={mi.ir}: {tuple(w.shape)}, times 1/sqrt(fan_in) = {alpha:.4f}")
h1_eq = []                                                                # the equation, block by block
for (i, o, alpha), W in zip(update1.linear.instructions, update1.linear.weight_views()):
    mi, s_i = update1.irreps_out[i], update1.irreps_out.slices()[i]
    m_L = m[:, s_i].reshape(9, mi.mul, mi.ir.dim)                          # [n_atoms, k, 2L+1]
    h1_eq.append(torch.einsum("nuM,uw->nwM", m_L, alpha * W).reshape(9, -1))  # Σ_k̃ W_{kL,k̃} m_{i,k̃LM}
h1_eq = torch.cat(h1_eq, dim=-1)
assert torch.allclose(h1, h1_eq, atol=1e-12)

# %% [markdown]
# *Line ↔ equation*: each weight view is the $k \times k$ matrix $W_{kL,\tilde k}$ of one irrep $L$; the same matrix
# acts on every component $M$ — that is why the map commutes with $D(R)$.
#
# Layer 2 receives $h^{(1)}$ (irreps $0e+1o+2e$) and outputs scalars only; its update adds the element-dependent
# residual $W_{z_i kL,\tilde k} h^{(1)}$, which keeps only the $L = 0$ block of $h^{(1)}$ here.

# %%
A2 = model.atomic_bases[1](h1, species, Y, radial, batch["edge_index"])       # Eq. 8, layer 2
m2 = model.messages[1](A2, species)                                           # Eq. 11, layer 2
update2 = model.updates[1]
h2 = update2(m2, h1, species)                                                 # Eq. 12, layer 2
residual = update2.self_connection(h1, species)                               # Σ W_{z_i} h^(1)
print("A^(2)", tuple(A2.shape), "| m^(2)", tuple(m2.shape), "| h^(2)", tuple(h2.shape), update2.irreps_out)
print("residual term", tuple(residual.shape), "| max |h2 − (W m2 + residual)| =",
      (h2 - update2.linear(m2) - residual).abs().max().item())
assert torch.allclose(h2, update2.linear(m2) + residual, atol=1e-12)

# %% [markdown]
# The residual really depends on the element $z_i$: give every atom the species of carbon and it changes, while the
# message term does not (it only sees $m$).

# %%
carbon = torch.full_like(species, int(model.z_to_index[6]))
changed = (update2.self_connection(h1, carbon) - residual).abs().max().item()
print("max change of the residual when every z_i is set to carbon:", changed)
assert changed > 1e-3

# %% [markdown]
# ## 7. The update is equivariant, and so is the whole chain so far
#
# In a two-layer model the residual only meets scalars. A middle layer of a deeper model maps all hidden irreps to
# all hidden irreps: we build that update (same class, residual on) and check it as a function of
# $(m, h^{(t)})$ — here the $1o$ and $2e$ blocks must rotate, and the $1o$ block flip sign under reflections.
# Then we check the chain $A^{(1)} \to m \to h^{(1)}$ of the model as one function.

# %%
irreps_h = str(update1.irreps_out)                                   # 8x0e+8x1o+8x2e
middle = Update(irreps_h, irreps_h, model.num_elements, residual=True).to(dtype)
print(assert_equivariant(middle, (h1, h1.flip(0), species), (irreps_h, irreps_h, None), irreps_h,
                         atoms_in=("atoms", "atoms", "atoms"), atoms_out="atoms"))

def layer_1_after_A(A_flat, z):
    return model.updates[0](msg(A_flat, z), model.embedding(z), z)

print(assert_equivariant(layer_1_after_A, (A_flat, species), (str(msg.irreps_in), None), irreps_h,
                         atoms_in=("atoms", "atoms"), atoms_out="atoms"))

# %% [markdown]
# ## Summary
#
# | equation | module | shape here |
# |---|---|---|
# | Eq. 10: $B^{(\nu)} = \mathcal C \cdot \prod A$ | `symmetric.b_functions`, `Contraction.U(ν)` | [9, 8, 2L+1, n_paths] |
# | Eq. 11: $m = \sum_\nu \sum_\eta W_{z_i} B$ | `message.SymmetricContraction` | [9, 8·(1+3+5)] = [9, 72] |
# | Eq. 12: $h^{(t+1)} = W m + W_{z_i} h^{(t)}$ | `update.Update` | [9, 72] (layer 1), [9, 8] (layer 2) |
#
# Next: notebook 06 reads the energy out of $h^{(t)}$ (Eq. 13) and assembles the whole model.
