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
# # 06 — The readout and the full model (stage 6)
#
# **What you will learn**
# - the **readout** $E_i = E^0_{z_i} + s \sum_t \mathcal R_t(h^{(t)}_i) + \mu$ (Eq. 13): linear for the first
#   layers, a one-hidden-layer MLP for the last, scalars only (the paper's Eq. 13 is $E_i = \sum_t \mathcal R_t$;
#   $E^0$, the scale $s$ and the shift $\mu$ come from the official code's `ScaleShiftMACE`);
# - the whole MACE, stage by stage, on a real molecule, with **every tensor shape printed next to its equation**;
# - forces $\mathbf F_i = -\partial E / \partial \mathbf r_i$ by automatic differentiation, checked against finite
#   differences; stress and virials of a periodic box.
#
# **Prerequisites**: notebook 05 (messages and update) and the stages before it (Eqs. 7–12).
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697 v2), Eqs. 7–13 (map: `docs/paper_equations.md`). The walk-through follows the spirit of
# ACEsuit's `MACE_developer` tutorial: one sub-step per line, its shape, its equation.

# %%
import os

import torch

from minimace.body_order import (body_order, body_order_table, many_body_terms, site_energy_on_subsets,
                                 with_linear_readouts)
from minimace.data import DataError, average_num_neighbors
from minimace.datasets import bundled, bundled_e0s, load_shared, shared_e0s
from minimace.graph import batch_graphs
from minimace.model import MACE

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
dtype = torch.float64
torch.manual_seed(0)

# %% [markdown]
# ## 1. A real molecule, its reference energy, and a model with the data's $E^0$
#
# One rMD17 ethanol configuration (PBE/def2-SVP; bundled GFN2-xTB ethanol if the shared folder is absent), and the
# isolated-atom energies $E^0_z$ of the same level of theory. The model's weights are random: the point here is the
# structure of the computation, not accuracy (training comes later).

# %%
try:
    configs, e0s = load_shared("botnet_ethanol", "train", index="0:3"), shared_e0s("botnet_ethanol")
except DataError:
    configs, e0s = [c for c in bundled("train") if len(c) == 9][:3], bundled_e0s()
config = configs[0]
batch = batch_graphs([config.to_graph(r_max=5.0, dtype=dtype)])
zs = [1, 6, 8]
model = MACE(r_max=5.0, max_ell=2, correlation=3, num_interactions=2, hidden_irreps="8x0e+8x1o+8x2e",
             MLP_irreps="8x0e", radial_MLP=[32, 32], avg_num_neighbors=average_num_neighbors([batch]),
             atomic_numbers=zs, atomic_energies=[e0s[z] for z in zs],
             atomic_inter_scale=0.5, atomic_inter_shift=-0.1).to(dtype)
print("E0 (eV):", {z: round(e0s[z], 4) for z in zs}, "| reference E =", round(float(batch["energy"]), 4), "eV")
assert batch["energy"].shape == (1,) and batch["forces"].shape == (9, 3)

# %% [markdown]
# ## 2. The whole model, line by line (Eqs. 7–13)
#
# The loop below calls the model's own modules in the order of `MACE.node_energies`. Each line prints the shape of
# the tensor it makes and the equation it implements. ($n$ = 9 atoms, $E$ = edges, $k$ = 8 channels.)

# %%
def show(name, x, eq=""):
    print(f"{name:<34} {str(tuple(x.shape)):<14} {eq}")
    return x

z = show("z_i (element index)", model.species(batch["atomic_numbers"]))
i, j = show("edge_index (centre i, neighbour j)", batch["edge_index"])
r_ij = show("r_ij = r_j − r_i + shift", batch["positions"][j] - batch["positions"][i] + batch["shifts"])
Y, radial = model.edge_embedding(r_ij)
show("Y_lm(r̂_ij)", Y, "φ, inside Eq. 8")
show("j_n(r_ij) f_p(r_ij)", radial, "φ, inside Eq. 8 (App. A.5)")
h = show("h^(0) = W_{z_i}", model.embedding(z), "chemical embedding")
E_inter, hs = torch.zeros(9, dtype=dtype), []
for t, basis in enumerate(model.atomic_bases):
    show(f"R^({t+1})_kl(r_ij)  radial MLP", basis.radial_mlp(radial), "Eq. 8 (App. A.5)")
    A = show(f"A^({t+1})_i  {basis.target_irreps}", basis(h, z, Y, radial, batch["edge_index"]), "Eq. 8")
    m = show(f"m^({t+1})_i  {model.messages[t].irreps_out}", model.messages[t](A, z), "Eqs. 10-11")
    h = show(f"h^({t+1})_i", model.updates[t](m, h, z), "Eq. 12")
    R_t = show(f"R_{t+1}(h^({t+1})_i)", model.readouts[t](h), "Eq. 13")
    E_inter, hs = E_inter + R_t, hs + [h]
E_i = show("E_i = E0_z + s Σ_t R_t + μ", model.atomic_energies(z) + model.scale_shift(E_inter), "Eq. 13 + ScaleShiftMACE")
E = show("E = Σ_i E_i", E_i.sum()[None], "Eq. 13")

# %% [markdown]
# *Line ↔ equation*: the loop body is one MACE layer — atomic basis (Eq. 8), product basis contracted into the message
# (Eqs. 10–11), update (Eq. 12), readout (Eq. 13). The check: the model's own `forward` gives the same numbers.

# %%
out = {key: value.detach() for key, value in model(batch).items()}
for key, value in out.items():
    show(f"model(batch)['{key}']", value, "")
print("max |E_i − node_energy| =", (E_i - out["node_energy"]).abs().max().item())
assert torch.allclose(E_i, out["node_energy"], atol=1e-12, rtol=0) and torch.allclose(E, out["energy"], atol=1e-10)

# %% [markdown]
# ## 3. The readouts (Eq. 13)
#
# $$ \mathcal R_t(h) = \sum_k W_k\, h_{k,00} / \sqrt{k} \quad (t < T), \qquad
#    \mathcal R_T(h) = \sum_{k'} W'_{k'}\, c\,\sigma\Big(\sum_k W_{k'k}\, h_{k,00} / \sqrt{k}\Big) / \sqrt{k_{MLP}}. $$
#
# The linear readout sees only the $k$ invariant channels $h_{k,00}$: the $1o$ and $2e$ blocks of $h^{(1)}$ are
# ignored (an energy must be invariant). $c$ normalises the activation $\sigma$ (SiLU) to unit second moment.

# %%
h1 = hs[0]                                                  # h^(1) from the walk-through above
lin = model.readouts[0]
W = lin.linear.weight_views()[0]                            # [k, 1]
R1_eq = h1[:, :8] @ W[:, 0] / 8 ** 0.5                     # only the 8 scalar channels
print("h^(1)", tuple(h1.shape), "| W of the linear readout", tuple(W.shape), "| R_1", tuple(R1_eq.shape))
assert torch.allclose(lin(h1), R1_eq, atol=1e-12)
h1_other = h1.clone()
h1_other[:, 8:] = torch.randn_like(h1[:, 8:])               # change every non-scalar block
assert torch.equal(lin(h1_other), lin(h1))

# %%
mlp = model.readouts[1]
h2 = hs[1]                                                  # the last layer's features (scalars only)
W1, W2 = mlp.linear_1.weight_views()[0], mlp.linear_2.weight_views()[0]   # [k, k_MLP], [k_MLP, 1]
hidden = torch.nn.functional.silu(h2 @ W1 / 8 ** 0.5) * mlp.act_norm       # c σ(W h)
R2_eq = hidden @ W2[:, 0] / W1.shape[1] ** 0.5
print("h^(2)", tuple(h2.shape), "| W", tuple(W1.shape), "| W'", tuple(W2.shape), "| c =", round(float(mlp.act_norm), 4))
assert torch.allclose(mlp(h2), R2_eq, atol=1e-12)

# %% [markdown]
# *Line ↔ equation*: `W` is $W_k$, `W1` is $W_{k'k}$, `W2` is $W'_{k'}$; the divisions by $\sqrt{\text{fan-in}}$ are
# e3nn's normalisation, which the official implementation also uses.
#
# With $E^0$ from the data, the untrained model's total energy is already close to the DFT total — because
# $\sum_i E^0_{z_i}$ carries almost all of it. What remains, the atomisation energy, is what the network must learn.

# %%
sum_E0 = float(model.atomic_energies(z).sum())
print(f"Σ E0 = {sum_E0:.3f} eV | model E = {float(out['energy']):.3f} eV",
      f"| reference E = {float(batch['energy']):.3f} eV")
print(f"reference atomisation energy E − Σ E0 = {float(batch['energy']) - sum_E0:.3f} eV")
assert abs(float(out["energy"]) - sum_E0) < 0.1 * abs(float(batch["energy"]) - sum_E0)

# %% [markdown]
# ## 4. Forces: $\mathbf F_i = -\partial E/\partial \mathbf r_i$ (autograd) against finite differences
#
# $$ F_{i\alpha} \approx -\frac{E(\mathbf r + h\,\mathbf e_{i\alpha}) - E(\mathbf r - h\,\mathbf e_{i\alpha})}{2h}. $$
#
# The neighbour list is kept fixed (all pairs are well inside the cutoff, and the envelope makes the energy smooth
# at $r_c$ anyway).

# %%
def energy_at(positions):
    return float(model(dict(batch, positions=positions), compute_forces=False)["energy"].detach())

step = 1e-4
forces = out["forces"].detach()                                    # [9, 3]
fd = torch.zeros_like(forces)
atoms = range(3) if QUICK else range(9)
for a in atoms:
    for c in range(3):
        plus, minus = batch["positions"].clone(), batch["positions"].clone()
        plus[a, c] += step
        minus[a, c] -= step
        fd[a, c] = -(energy_at(plus) - energy_at(minus)) / (2 * step)
err = (forces[list(atoms)] - fd[list(atoms)]).abs().max().item()
print(f"forces {tuple(forces.shape)} | max |F_autograd − F_fd| = {err:.2e} eV/Å",
      f"(|F| up to {forces.abs().max():.3f})")
assert err < 1e-6 and forces.abs().max() > 1e-2

# %% [markdown]
# Newton's third law as a second check: the sum of all forces on an isolated molecule is zero (translation
# invariance), and so is the total torque (rotation invariance).

# %%
total_force = forces.sum(0)
torque = torch.linalg.cross(batch["positions"], forces).sum(0)
print("Σ F_i =", total_force.tolist(), "\nΣ r_i × F_i =", torque.tolist())
assert total_force.abs().max() < 1e-10 and torque.abs().max() < 1e-10

# %% [markdown]
# ## 5. A batch of molecules, and a periodic box with stress
#
# A batch is one graph with several disconnected pieces (`batch` gives the graph of each atom): energies and forces
# of a batch are those of each molecule alone.

# %%
many = batch_graphs([c.to_graph(r_max=5.0, dtype=dtype) for c in configs])
out_many = model(many)
single = torch.cat([model(batch_graphs([c.to_graph(r_max=5.0, dtype=dtype)]))["energy"] for c in configs])
print("positions", tuple(many["positions"].shape), "| batch", tuple(many["batch"].shape),
      "| energy", tuple(out_many["energy"].shape), "| forces", tuple(out_many["forces"].shape))
assert torch.allclose(out_many["energy"], single, atol=1e-10, rtol=0)

# %% [markdown]
# For a periodic cell the model also returns virials $W = -\partial E/\partial \varepsilon$ (derivative with respect
# to a symmetric strain of positions and cell) and the stress $\sigma = -W / V$. The bundled data set has 8-water
# boxes (GFN2-xTB) with reference stress.

# %%
box = bundled("water_box", index="0:1")[0]
box_batch = batch_graphs([box.to_graph(r_max=5.0, dtype=dtype)])
out_box = model(box_batch, compute_stress=True)
volume = torch.linalg.det(box_batch["cell"][0])
for key in ("energy", "forces", "stress", "virials"):
    show(f"water box ['{key}']", out_box[key], "")
assert torch.allclose(out_box["stress"], -out_box["virials"] / volume, atol=1e-14)
assert torch.allclose(out_box["stress"], out_box["stress"].transpose(1, 2), atol=1e-12)

# %% [markdown]
# ## 6. Body order: how many atoms one term of $E_i$ can involve
#
# The body-ordered message of Eq. 7 sums $\nu$-fold products over neighbours $j_1, \dots, j_\nu$ (self-interaction
# $j_1 = j_2$ included); with Eq. 8, each factor also carries $h^{(t)}_j$, which already depends on the neighbours of
# $j$. With $b_t$ the body order of $h^{(t)}$ ($b_0 = 1$: $h^{(0)}$ knows only $z_i$), one term of $A^{(t+1)}_i$
# involves atom $i$ and the $b_t$ atoms of $h^{(t)}_j$, and a product of $\nu$ of them
#
# $$ b_{t+1} = 1 + \nu\, b_t, \qquad b_T = 1 + \nu + \nu^2 + \dots + \nu^T . $$
#
# The update (Eq. 12) and the linear readouts are linear, so they keep it. `body_order.body_order_table` computes
# the table; the row $\nu = 1$ is a two-body MPNN, which gains one atom per layer.

# %%
table = body_order_table(correlations=(1, 2, 3, 4), layers=(1, 2, 3))
print("body order b_T      " + "".join(f"T = {T:<6}" for T in (1, 2, 3)))
for nu, row in table.items():
    print(f"ν = {nu} (messages {nu + 1}-body)", "".join(f"{b:<10}" for b in row.values()))
paper = body_order(model.config["correlation"], model.config["num_interactions"])
print(f"this notebook's model (ν = {model.config['correlation']}, T = {model.config['num_interactions']}): "
      f"features of body order {paper}")

# %% [markdown]
# The formula is a count; a measurement checks it. Write the site energy of atom $i$ as a *cluster expansion* over the
# atoms present, $E_i(S) = \sum_{U \subseteq S} g(U)$, with $g(U) = \sum_{V \subseteq U} (-1)^{|U| - |V|} E_i(V)$
# (`many_body_terms` evaluates $E_i$ on every subset of the neighbours). A model of body order $b$ has $g(U) = 0$ for
# every cluster of more than $b$ atoms. On the ethanol above (every atom a neighbour of every other at this $r_c$:
# checked below), for small
# models whose last readout is made linear (`with_linear_readouts`): the largest $|g|$ per cluster size $n$.

# %%
ethanol = config.to_atoms()
n_at = len(ethanol)
print(f"{n_at} atoms, {batch['edge_index'].shape[1]} edges = n(n − 1): one environment")
assert batch["edge_index"].shape[1] == n_at * (n_at - 1)
measured = {}
for nu, T in ((1, 1), (2, 1), (1, 2), (2, 2)):
    torch.manual_seed(0)
    small = MACE(r_max=5.0, num_bessel=4, max_ell=2, correlation=nu, num_interactions=T, hidden_irreps="4x0e+4x1o",
                 MLP_irreps="4x0e", radial_MLP=[8], atomic_numbers=zs).to(dtype)
    g = many_body_terms(site_energy_on_subsets(with_linear_readouts(small), ethanol), 0, range(1, len(ethanol)))
    measured[nu, T] = g
    print(f"ν = {nu}, T = {T}: b = {body_order(nu, T)} |", " ".join(f"n={n}: {v:.0e}" for n, v in g.items()))
for (nu, T), g in measured.items():
    b, scale = body_order(nu, T), max(g.values())
    assert g[b] > 1e-9 * scale and all(g[n] < 1e-12 * scale for n in g if n > b)

# %% [markdown]
# *Line ↔ equation*: `body_order(ν, T)` is the recursion $b_{t+1} = 1 + \nu b_t$; the measured $g$ is nonzero up to
# $n = b$ and rounding noise beyond it, in every row. The model of this notebook reaches the body order printed
# above in the features $h^{(T)}$; its last readout is an MLP, so $E_i$ itself is not of finite body order — the
# non-linearity mixes all orders, as the next cell measures (the same ν = 1, T = 2 model with its MLP readout kept).

# %%
torch.manual_seed(0)
small = MACE(r_max=5.0, num_bessel=4, max_ell=2, correlation=1, num_interactions=2, hidden_irreps="4x0e+4x1o",
             MLP_irreps="4x0e", radial_MLP=[8], atomic_numbers=zs).to(dtype)
g_mlp = many_body_terms(site_energy_on_subsets(small, ethanol), 0, range(1, 5))
print("MLP readout, ν = 1, T = 2:", " ".join(f"n={n}: {v:.0e}" for n, v in g_mlp.items()))
assert g_mlp[body_order(1, 2) + 1] > 1e-9 * max(g_mlp.values())

# %% [markdown]
# ## Summary
#
# | equation | module | shape (ethanol, 9 atoms, 72 edges) |
# |---|---|---|
# | φ inside Eq. 8, App. A.5: $Y_{lm}(\hat r_{ij})$, $j_n f_p$, $R_{kl}$ | `one_particle.EdgeEmbedding`, `radial.RadialMLP` | [72, 9], [72, 8] |
# | Eq. 8: $A^{(t)}_i$ | `atomic_basis.AtomicBasis` | [9, 72] |
# | Eqs. 10–11: $m^{(t)}_i$ | `message.SymmetricContraction` | [9, 72], then [9, 8] |
# | Eq. 12: $h^{(t)}_i$ | `update.Update` | [9, 72], then [9, 8] |
# | Eq. 13 (with $E^0$, $s$, $\mu$ of `ScaleShiftMACE`): $E_i$, $E$ | `readout.*`, `model.MACE` | [9], [1] |
# | $\mathbf F = -\nabla E$ | autograd in `MACE.forward` | [9, 3] |
# | Eq. 7 (body order $1 + \nu + \dots + \nu^T$) | `body_order.body_order` | — |
#
# Next: notebook 07 tests every one of these stages for equivariance, and shows how far a two-layer MACE "sees".
