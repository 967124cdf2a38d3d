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
# # 07 — Equivariance lab, and how far MACE sees
#
# **What you will learn**
# - to test **every stage** of a MACE, and the whole model, for rotations, reflections, translations and permutations
#   of atoms with `minimace.testing.assert_equivariant` — on the very inputs the model feeds each stage;
# - what the errors look like in float64 (~1e-16) and float32 (~1e-7), and why the bounds are 1e-12 and 1e-5;
# - that the tests **catch** broken models: a layer that uses the raw $x$-coordinate, a layer that drops the parity
#   sign (it stays rotation-equivariant, only reflections reveal it);
# - the **receptive field**: two message-passing layers of cutoff $r_c$ feel atoms up to $2 r_c$ away through a chain of
#   neighbours, while an ACE of cutoff $r_c$ does not (figure `figures/mpnn_ace.png`).
#
# **Prerequisites**: notebooks 00 (equivariance, $D(R)$, parity) and 05–06 (the stages and the model).
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697 v2): Eqs. 5–6 (equivariance), Eqs. 2–4 (message
# passing), Eqs. 7–13 (the stages; map: `docs/paper_equations.md`); the receptive-field argument is in the text
# (the paper has no figure of it: `figures/mpnn_ace.png` is this project's drawing).

# %%
import os
import tempfile

import torch
from IPython.display import Image, display

from minimace.atomic_basis import AtomicBasis
from minimace.data import DataError
from minimace.datasets import bundled, load_shared
from minimace.figures import chain_atoms, receptive_field_experiment, receptive_field_figure
from minimace.graph import atoms_to_graph, batch_graphs
from minimace.message import element_order
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
        yield (f"m^({t+1})  (Eqs. 10-11)", f"messages.{t}", lambda A, z, msg=msg: msg(A, z, element_order(z, n_el)),
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
# The same weights in both precisions. The errors are rounding errors: about the machine epsilon
# (2.2e-16 and 1.2e-7) times the size of the outputs and the depth of the computation. That is why the default
# bounds are $10^{-12}$ (float64) and $10^{-5}$ (float32), relative plus absolute.

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
# here as a small but unmistakable error (~1e-5 against a bound of ~1e-12).

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
# neighbours, and it pays for $r_c$-sized neighbourhoods only; an ACE needs the full $2 r_c$ sphere (8× the volume,
# so ~8× the neighbours) to see as far. MACE keeps $T = 2$ so the receptive field stays local enough for large
# systems and parallel simulation (paper, Sec. 3).
