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
    subprocess.run(["minimace", "download", "botnet_3bpa"], check=True)
    subprocess.run(["minimace", "download", "solvent_xtb"], check=True)
    subprocess.run(["minimace", "download", "si_gap18_tiny"], check=True)

# %% [markdown]
# # 07 — Equivariance lab, and how far MACE sees
#
# **What you will learn**
# - to test **every stage** of a MACE, and the whole model, for rotations, reflections, translations and permutations
#   of atoms with `minimace.testing.assert_equivariant` — on the very inputs the model feeds each stage;
# - what the errors look like in float64 and float32 (measured below), and why the default bounds differ;
# - that the tests **catch** broken models: a layer that uses the raw $x$-coordinate, a layer that drops the parity
#   sign (it stays rotation-equivariant, only reflections reveal it);
# - the **receptive field**: two message-passing layers of cutoff $r_c$ feel atoms up to $2 r_c$ away through a chain of
#   neighbours, while an ACE of cutoff $r_c$ does not (figure `figures/mpnn_ace.png`);
# - the **cost side** of "MPNN as a sparsified ACE": neighbours within $r_c$ and $2r_c$ on real structures, the
#   time of a two-layer MACE against an ACE of cutoff $2r_c$, and how the receptive field grows with $T$ and $r_c$.
#
# **Prerequisites**: notebooks 00 (equivariance, $D(R)$, parity) and 05–06 (the stages and the model).
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697 v2): Eqs. 5–6 (equivariance), Eqs. 2–4 (message
# passing), Eqs. 7–13 (the stages; map: `docs/paper_equations.md`); the receptive-field argument is in the text
# (the paper has no figure of it: `figures/mpnn_ace.png` is this project's drawing).

# %%
import os
import tempfile
import time

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display

from minimace.ace import ACEBasis
from minimace.atomic_basis import AtomicBasis
from minimace.body_order import receptive_field
from minimace.data import DataError, average_num_neighbors
from minimace.datasets import bundled, load_shared
from minimace.figures import chain_atoms, receptive_field_experiment, receptive_field_figure
from minimace.graph import atoms_to_graph, batch_graphs
from minimace.model import MACE
from minimace.one_particle import EdgeEmbedding
from minimace.so3 import Irreps
from minimace.testing import assert_equivariant, assert_model_equivariant

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
N_TRIALS = 1 if QUICK else 3
torch.manual_seed(0)

# %% [markdown]
# ## 1. A model with every irrep up to $l = 3$, and real structures
#
# Hidden irreps $0e + 1o + 2e + 3o$: the odd blocks change sign under a reflection, the even ones do not. The
# structures: an rMD17 ethanol (shared data; bundled GFN2-xTB ethanol when absent) and a periodic box of 8 waters
# (bundled, GFN2-xTB).

# %%
def build(dtype, seed=0, **changes):
    torch.manual_seed(seed)
    kw = dict(r_max=4.0, max_ell=3, correlation=3, num_interactions=2, hidden_irreps="4x0e+4x1o+4x2e+4x3o",
              MLP_irreps="4x0e", radial_MLP=[16, 16], avg_num_neighbors=6.0, atomic_numbers=[1, 6, 8])
    return MACE(**dict(kw, **changes)).to(dtype)

try:
    ethanol = load_shared("botnet_ethanol", "train", index="0:1")[0]
except DataError:
    ethanol = [c for c in bundled("train") if len(c) == 9][0]
water_box = bundled("water_box", index="0:1")[0]
graphs = {dtype: {"ethanol": batch_graphs([ethanol.to_graph(4.0, dtype=dtype)]),
                  "water box": batch_graphs([water_box.to_graph(4.0, dtype=dtype)])}
          for dtype in (torch.float32, torch.float64)}
model = build(torch.float64)
for name, g in graphs[torch.float64].items():
    print(f"{name}: {len(g['positions'])} atoms, {g['edge_index'].shape[1]} edges, pbc {g['pbc'][0].tolist()}")

# %% [markdown]
# ## 2. Every stage, on the inputs the model really feeds it
#
# A forward *hook* records the arguments and the output of a module each time the model calls it. We record every
# stage during one evaluation of ethanol, then test each stage as a function of those arguments. Each argument gets a
# *kind*: an irreps string (features rotate with $D(R)$), `"cartesian_vectors"`, or `None` (element indices,
# edge indices: unchanged); and for permutations `"atoms"` (reorder rows) or `"atom_index"` (relabel values).

# %%
STAGES = ["edge_embedding"] + [f"{key}.{t}" for t in range(2) for key in ("atomic_bases", "messages", "updates",
                                                                          "readouts")]

def record(model, batch):
    """{stage name: the arguments the model called it with}"""
    seen, modules = {}, dict(model.named_modules())
    hooks = [modules[name].register_forward_hook(lambda mod, args, out, name=name: seen.__setitem__(name, args))
             for name in STAGES]
    model(batch, compute_forces=False)
    for h in hooks:
        h.remove()
    return seen

seen = record(model, graphs[torch.float64]["ethanol"])
for name, args in seen.items():
    print(f"{name:<16}", [tuple(a.shape) if torch.is_tensor(a) else type(a).__name__ for a in args])
assert list(seen) == STAGES

# %% [markdown]
# For each stage: (function, kinds of its inputs, kind of its output, permutation kinds). The atomic basis of layer
# $t$ takes $(h^{(t)}, z, Y, \text{radial}, \text{edge\_index})$; the message $(A, z)$; the update $(m, h^{(t)}, z)$;
# the readout $h^{(t+1)}$.

# %%
SH, n_el = str(Irreps.spherical_harmonics(3)), model.num_elements

def stage_specs(model):
    """(label, stage, function, input kinds, output kind, input atom kinds, output atom kind)"""
    yield "φ: Y, j_n f_p (Eq. 8)", "edge_embedding", model.edge_embedding, ("cartesian_vectors",), (SH, "0e"), \
        ("atoms",), ("atoms", "atoms")                                   # "atoms" here: the edges
    for t in range(2):
        b, msg, up, ro = model.atomic_bases[t], model.messages[t], model.updates[t], model.readouts[t]
        yield (f"A^({t+1})  (Eq. 8)", f"atomic_bases.{t}", b, (str(b.node_irreps), None, SH, "0e", None),
               str(b.target_irreps), ("atoms", "atoms", None, None, "atom_index"), "atoms")
        yield (f"m^({t+1})  (Eqs. 10-11)", f"messages.{t}", msg,
               (str(msg.irreps_in), None), str(msg.irreps_out), ("atoms", "atoms"), "atoms")
        yield (f"h^({t+1})  (Eq. 12)", f"updates.{t}", up, (str(up.irreps_out), str(b.node_irreps), None),
               str(up.irreps_out), ("atoms",) * 3, "atoms")
        yield f"R_{t+1}  (Eq. 13)", f"readouts.{t}", ro, (str(up.irreps_out),), "0e", ("atoms",), "atoms"

# %% [markdown]
# Now the tests: rotation, reflection and permutation for every stage (translations act only on positions, which the
# stages never see — they see the edge vectors $\mathbf r_{ij}$).

# %%
for label, stage, fn, k_in, k_out, a_in, a_out in stage_specs(model):
    args = seen[stage][: len(k_in)]                                   # the message's 3rd argument is derived from z
    report = assert_equivariant(fn, args, k_in, k_out, atoms_in=a_in, atoms_out=a_out, n_trials=N_TRIALS)
    print(f"{label:<18} out {str(k_out):<26}",
          "  ".join(f"{test} {err:.1e}" for test, (err, _, _) in report.errors.items()))

# %% [markdown]
# ## 3. The whole model: energy, node energies, forces, stress
#
# `assert_model_equivariant` transforms the batch dict (positions, cell rows, shifts; atom order inside each graph)
# and checks energy and $E_i$ (invariant), forces (rotate as vectors) and, for the periodic box, stress and virials
# ($\sigma \mapsto R\,\sigma R^\top$). The "translation" test also applies a random rotation.

# %%
for name, batch in graphs[torch.float64].items():
    print(name, "\n", assert_model_equivariant(lambda b: model(b, compute_stress=True), batch, n_trials=N_TRIALS))

# %% [markdown]
# ## 4. float32 versus float64
#
# The same weights in both precisions. The errors are rounding errors: about the machine epsilon of each precision
# (printed next to it) times the size of the outputs and the depth of the computation. That is why the default
# bounds of `assert_equivariant` are far apart for float64 and float32 (relative plus absolute).

# %%
model32 = build(torch.float64)
model32.load_state_dict(model.state_dict())
model32 = model32.float()
errors = {}
for dtype, m in ((torch.float64, model), (torch.float32, model32)):
    report = assert_model_equivariant(lambda b: m(b, compute_stress=True), graphs[dtype]["water box"],
                                      tests=("rotation", "reflection"), n_trials=N_TRIALS)
    errors[dtype] = report.max_error
    print(f"{str(dtype):<14} max error {report.max_error:.2e}   machine epsilon {torch.finfo(dtype).eps:.1e}")
assert errors[torch.float64] < 1e-12 and errors[torch.float32] < 1e-4
assert errors[torch.float32] > 100 * errors[torch.float64]

# %% [markdown]
# ## 5. Broken models that the tests must catch
#
# **(a) A layer that uses the raw $x$-coordinate.** The radial features get multiplied by $(1 + \tfrac12 x_{ij})$ —
# a plausible bug (an index mix-up). It only sees edge vectors, so it does not care where the molecule sits, and it is
# permutation equivariant; but it is not rotation equivariant (and the "translation" test, which also rotates, fails).

# %%
class RawXEdgeEmbedding(EdgeEmbedding):
    def forward(self, vectors):
        Y, radial = super().forward(vectors)
        return Y, radial * (1 + 0.5 * vectors[:, :1])                # depends on x_ij itself: a bug

broken = build(torch.float64)
broken.edge_embedding = RawXEdgeEmbedding(4.0, 8, 5, 3)
try:
    assert_model_equivariant(broken, graphs[torch.float64]["ethanol"], n_trials=1)
    caught = None
except AssertionError as err:
    caught = str(err)
print(caught)
assert caught is not None and "FAIL rotation" in caught and "ok   permutation" in caught

# %% [markdown]
# **(b) A layer that drops the parity sign.** Layer 2's atomic basis is told that $h^{(1)}$ has irreps
# $0e + 1e + 2o + 3e$ instead of $0e + 1o + 2e + 3o$: it then couples $1o \otimes Y_1$ into a "$1o$" output, which is
# really a cross product (even). Every operation is still a rotation-equivariant map — only reflections show it,
# here as an error small in absolute terms but orders of magnitude above the float64 bound (printed below).

# %%
broken = build(torch.float64)
good = broken.atomic_bases[1]
broken.atomic_bases[1] = AtomicBasis("4x0e+4x1e+4x2o+4x3e", 3, good.target_irreps, 8, [16, 16], 6.0, n_el,
                                     False).double()
print(assert_model_equivariant(broken, graphs[torch.float64]["ethanol"], tests=("rotation",), n_trials=1))
try:
    assert_model_equivariant(broken, graphs[torch.float64]["ethanol"], tests=("reflection",), n_trials=1)
    caught = None
except AssertionError as err:
    caught = str(err)
print(caught)
assert caught is not None and "FAIL reflection" in caught

# %% [markdown]
# ## 6. The receptive field: MACE with $T = 2$ layers of cutoff $r_c$ versus ACE
#
# Four atoms on a zig-zag chain $i - j - k - l$: only consecutive atoms are closer than $r_c = 3$ Å, so $k$ is between
# $r_c$ and $2r_c$ from $i$, and reaches $i$ only through $j$. In layer 1, $h^{(1)}_j$ takes in $\mathbf r_{jk}$
# (Eq. 8 sums over the neighbours of $j$); in layer 2, $A^{(2)}_i$ takes in $h^{(1)}_j$. So $E_i$ of a 2-layer model
# depends on $\mathbf r_k$, and that of a 1-layer model does not. The sensitivity matrix $|\partial E_i/\partial
# \mathbf r_k|$ by autograd shows it for all pairs at once:

# %%
chain = chain_atoms(3.0)
g = atoms_to_graph(chain, 3.0)
print("distances (Å):\n", torch.tensor(chain.get_all_distances()).round(decimals=2))
for T in (1, 2, 3):
    m = build(torch.float64, r_max=3.0, num_interactions=T, hidden_irreps="8x0e+8x1o", max_ell=2)
    S = torch.autograd.functional.jacobian(lambda p: m.node_energies(g, p), g["positions"]).norm(dim=-1)
    print(f"T = {T}: E_i depends on r_k  (rows i, columns k; i j k l)\n", (S > 0).int())
    hops = (torch.arange(4)[:, None] - torch.arange(4)[None, :]).abs()         # graph distance on the chain
    assert torch.equal(S > 0, hops <= T)

# %% [markdown]
# Now the experiment of the figure: move $k$ by 0.3 Å along the bond $j \to k$ and record $|\Delta E_i|$ for a MACE with
# $T = 1$ and $T = 2$ (cutoff $r_c$), the same $T = 2$ MACE when $j$ is removed (no chain), and a linear ACE with
# cutoff $r_c$ and $2 r_c$ (random coefficients $c$, $E_i = \sum_\eta c_\eta B_{i,\eta}$).

# %%
res = receptive_field_experiment(r_c=3.0, delta=0.3, dtype=torch.float64)
for name, value in res["dE_i"].items():
    print(f"|ΔE_i| {name:<16} = {value:.3e} eV")
dE = res["dE_i"]
assert dE["MACE T=2"] > 1e-8 and dE["ACE 2r_c"] > 1e-8
assert dE["MACE T=1"] == dE["ACE r_c"] == dE["MACE T=2, no j"] == 0.0

# %% [markdown]
# The zeros are exact: with no path from $\mathbf r_k$ to $E_i$ in the computation, the very same floating-point
# operations run before and after the move. The figure draws the two pictures with these numbers
# (`python -m minimace.figures` writes it to `figures/mpnn_ace.png`):

# %%
path = os.path.join(tempfile.mkdtemp(), "mpnn_ace.png")
receptive_field_figure(path, results=res)
display(Image(filename=path))
assert os.path.getsize(path) > 10_000

# %% [markdown]
# **Take-away.** A $T$-layer MACE with cutoff $r_c$ has a receptive field of $T r_c$, but only along chains of
# neighbours, and it pays for $r_c$-sized neighbourhoods only; an ACE needs the full $2 r_c$ sphere to see as far.
# In that sense message passing is a *sparsified* ACE of cutoff $T r_c$: the next two sections count what each sees
# and what each costs on real structures. MACE keeps $T = 2$ so the receptive field stays local enough for large
# systems and parallel simulation (the paper's argument, in its text).

# %% [markdown]
# ## 7. MPNN as a sparsified ACE: what each sees and what each costs
#
# On real structures, the mean number of neighbours within $r_c$ (what each layer of MACE sums over, Eq. 8) and
# within $2 r_c$ (what an ACE must sum over to see as far as two layers): a periodic liquid (the bundled water box),
# the molecules of the shared data when they are present (3BPA, the largest solvent cluster) and a silicon crystal.
# Molecules smaller than the $2r_c$ sphere saturate; dense matter follows the volume ratio $2^3$.

# %%
R_C = 5.0
structures = {"water box (periodic)": water_box.to_atoms(), "ethanol": ethanol.to_atoms()}
shared = {"3BPA": lambda: load_shared("botnet_3bpa", "train", index="0:10"),
          "solvent cluster": lambda: load_shared("solvent_xtb", "train", index="0:10"),
          "Si crystal": lambda: load_shared("si_gap18_tiny", "train", index="0:10")}
for label, load in shared.items():
    try:
        structures[label] = max(load(), key=len).to_atoms()
    except DataError as err:
        print(f"{label}: skipped ({str(err)[:90]}...)")
counts = {}
for label, atoms in structures.items():
    near, far = (average_num_neighbors([atoms_to_graph(atoms, r)]) for r in (R_C, 2 * R_C))
    counts[label] = dict(atoms=len(atoms), near=near, far=far, ratio=far / near)
volume_ratio = (2 * R_C) ** 3 / R_C ** 3
print(f"r_c = {R_C} Å; volume ratio of the 2r_c and r_c spheres: {volume_ratio:g}")
for label, c in counts.items():
    print(f"{label:<22} {c['atoms']:>3} atoms: neighbours within r_c {c['near']:6.1f}, within 2r_c {c['far']:7.1f}"
          f"  (× {c['ratio']:.1f})")
assert all(c["far"] >= c["near"] for c in counts.values())
assert counts["water box (periodic)"]["ratio"] > volume_ratio / 2          # dense matter: about the volume ratio

# %% [markdown]
# The time of one energy-and-forces evaluation of the water box: a two-layer MACE of cutoff $r_c$ against a linear
# ACE (`minimace.ace.ACEBasis`, the same basis at both cutoffs) of cutoff $r_c$ and $2r_c$. Which of MACE and ACE
# is faster depends on the sizes of the two models (printed): the comparison that does not is ACE at $2r_c$
# against ACE at $r_c$ — the sums over neighbours grow with the number of edges, the products per atom do not.
# MACE keeps the edges of $r_c$ and pays for its second layer instead. CPU time (`time.process_time`), best of
# three.

# %%
def cpu_time(fn, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


box = structures["water box (periodic)"]
torch.manual_seed(0)
mace2 = MACE(r_max=R_C, num_bessel=8, max_ell=2, correlation=3, num_interactions=2, hidden_irreps="16x0e+16x1o",
             MLP_irreps="16x0e", radial_MLP=[32, 32], atomic_numbers=[1, 8]).double()
g_near = atoms_to_graph(box, R_C)
timings = {"MACE, T = 2, cutoff r_c": (cpu_time(lambda: mace2(g_near)), g_near["edge_index"].shape[1])}
for label, r in (("ACE, cutoff r_c", R_C), ("ACE, cutoff 2r_c", 2 * R_C)):
    basis = ACEBasis([1, 8], r_max=r, n_max=6, l_max=2, max_degree=(6, 8, 6)).double()
    coefficients = torch.randn(basis.num_basis, dtype=torch.float64)
    g = atoms_to_graph(box, r)

    def energy_and_forces(basis=basis, c=coefficients, g=g):
        positions = g["positions"].clone().requires_grad_(True)
        E = (basis(positions, g["atomic_numbers"], g["edge_index"], g["shifts"]) @ c).sum()
        return torch.autograd.grad(E, positions)[0]

    timings[label] = (cpu_time(energy_and_forces), g["edge_index"].shape[1])
print(f"MACE: {sum(p.numel() for p in mace2.parameters())} weights; ACE: {basis.num_basis} B-functions per element")
for label, (seconds, edges) in timings.items():
    print(f"{label:<26} {edges:>6} edges  {1000 * seconds:7.1f} ms")
far_over_near = timings["ACE, cutoff 2r_c"][0] / timings["ACE, cutoff r_c"][0]
print(f"ACE 2r_c / ACE r_c: time × {far_over_near:.1f} for edges × "
      f"{timings['ACE, cutoff 2r_c'][1] / timings['ACE, cutoff r_c'][1]:.1f}; "
      f"ACE 2r_c / MACE (T = 2, r_c): × {timings['ACE, cutoff 2r_c'][0] / timings['MACE, T = 2, cutoff r_c'][0]:.2f}")
assert far_over_near > 1

# %% [markdown]
# *Line ↔ equation*: the edge counts are $\sum_i |\mathcal N(i)|$ at each cutoff (the sums of Eq. 8); the time of
# an ACE grows with them, while the MACE's stays that of the $r_c$ graph times its $T$ layers.
#
# ## 8. The receptive field against $T$ and $r_c$
#
# `body_order.receptive_field` counts, for each atom $i$, the atoms a $T$-layer model of cutoff $r_c$ can feel —
# those reached in $T$ hops of the $r_c$ graph — and the atoms inside the sphere of radius $T r_c$, which an ACE of
# that cutoff sees. (In section 6 the same count matched the autograd sensitivity $\partial E_i / \partial
# \mathbf r_k$; `tests/test_body_order.py` checks it for every atom.) The sweep, averaged over atoms:

# %%
R_SWEEP, T_SWEEP = (2.0, 3.0, 4.0, 5.0), (1, 2, 3)
shown = {label: structures[label] for label in ("water box (periodic)", "3BPA") if label in structures}
if len(shown) < 2:
    shown["ethanol"] = structures["ethanol"]
sweep = {(label, T, r): receptive_field(atoms, r, T) for label, atoms in shown.items()
         for T in T_SWEEP for r in R_SWEEP}


def plot_receptive_sweep():
    fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 3.8))
    for ax, label in zip(np.atleast_1d(axes), shown):
        for T, colour in zip(T_SWEEP, ("tab:blue", "tab:orange", "tab:green")):
            ax.plot(R_SWEEP, [sweep[label, T, r]["hops"].mean() for r in R_SWEEP], "o-", color=colour,
                    label=f"MPNN, T = {T} (hops)")
            ax.plot(R_SWEEP, [sweep[label, T, r]["sphere"].mean() for r in R_SWEEP], "s--", color=colour,
                    alpha=0.6, label=f"ACE, cutoff {T}·r_c")
        ax.set(yscale="log", xlabel="r_c (Å)", ylabel="atoms seen by E_i (mean over i)", title=label)
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    plt.show()


plot_receptive_sweep()
for (label, T, r), field in sweep.items():
    assert (field["hops"] <= field["sphere"]).all()

# %% [markdown]
# Solid lines never lie above dashed ones of the same colour: the message-passing model sees the atoms of its
# $T r_c$ sphere only along chains of neighbours. On the molecule the two meet once the chains cover it; in the
# liquid, at the smallest $r_c$ the chains hardly leave one water molecule while the $T r_c$ sphere holds many. In
# Jupyter, the sliders show one point of the sweep for every structure (the figure above is
# the static rendering):

# %%
def show_receptive_field(T=2, r_c=3.0):
    fig, ax = plt.subplots(figsize=(7, 3))
    labels = list(shown)
    fields = [receptive_field(shown[label], r_c, T) for label in labels]
    x = np.arange(len(labels))
    ax.bar(x - 0.25, [1 + f["neighbours"].mean() for f in fields], 0.25, label="within r_c (one layer)")
    ax.bar(x, [f["hops"].mean() for f in fields], 0.25, label=f"MPNN, {T} layers (hops)")
    ax.bar(x + 0.25, [f["sphere"].mean() for f in fields], 0.25, label=f"ACE, cutoff {T}·r_c")
    ax.set(xticks=x, xticklabels=labels, yscale="log", ylabel="atoms seen (mean)", title=f"T = {T}, r_c = {r_c} Å")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7)
    plt.show()


widgets.interactive(show_receptive_field, T=widgets.IntSlider(value=2, min=1, max=3),
                    r_c=widgets.FloatSlider(value=3.0, min=2.0, max=5.0, step=0.5))

# %% [markdown]
# ## 9. The same checks for any potential: `minimace.testing.verify`
#
# Everything above tested minimace from the inside, stage by stage. `verify(potential, atoms)` checks a potential
# from the outside — an ASE calculator, a minimace model, or a plain function `(positions, numbers, cell, pbc) ->
# energy, forces, stress` — so it works on potentials we did not write. Besides the four symmetries (energy
# invariant, forces rotated as vectors, stress as a tensor) it checks the physics: forces $= -\partial E/\partial
# \mathbf r$ and stress $= \frac1V \partial E/\partial\varepsilon$ by finite differences, continuity through the
# cutoff, extensivity, and energy conservation in a short NVE run (the Verlet error must fall like $\Delta t^2$).
# Tolerances depend on the precision (`docs/verification.md`). First the model of section 1 on the periodic water box:

# %%
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from minimace.testing import verify

report_mace = verify(model, water_box.to_atoms())
print(report_mace)
assert report_mace.passed and len(report_mace.results) == 9

# %% [markdown]
# And ASE's EMT on a copper cell — a potential with nothing in common with MACE. Its cutoff (the radius of its
# neighbour list) is read from the calculator:

# %%
report_emt = verify(EMT(), bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2))
print(report_emt)
assert report_emt.passed

# %% [markdown]
# Each check's error (dot) against its tolerance (grey bar), on a log scale: the symmetry errors are rounding errors,
# ~$10^{-13}$ against $10^{-10}$; the NVE ratio sits at the $1/4$ of a second-order integrator.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
report_mace.plot(ax=axes[0])
report_emt.plot(ax=axes[1])
plt.show()

# %% [markdown]
# A potential that looks fine can still fail. ASE's Lennard-Jones calculator by default shifts the energy to zero at
# the cutoff but leaves the force jumping there; with `smooth=True` a switching function removes the jump:

# %%
argon = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
for smooth in (False, True):
    r = verify(LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0, smooth=smooth), argon, checks=["cutoff_smoothness"])
    c = r["cutoff_smoothness"]
    print(f"smooth={smooth!s:<5}: {'pass' if c.passed else 'FAIL'}  energy jump {c.details['energy']:.1e}, "
          f"force jump {c.details['forces']:.1e} (tolerance {c.tolerance:.0e})")
    assert c.passed == smooth

# %% [markdown]
# The same suite runs from the command line (`minimace verify MODEL STRUCTURE`, or `--calculator MODULE:FACTORY`;
# exit status 0 only when every check passes) and in another project's tests (`pytest -p minimace.testing.plugin`,
# then `def test_my_potential(verify): verify(my_calc, atoms)`).
