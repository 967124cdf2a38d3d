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
# # 09 — Training MACE on real data
#
# **What you will learn**
# - how reference energies are split into isolated-atom energies $E_0$ and a learned interaction part,
#   and which statistics (shift, scale, mean number of neighbours) a model is built with;
# - the weighted loss of the MACE paper (energy per atom + forces) and why $\lambda_F \gg \lambda_E$;
# - the pieces of a training run: AMSGrad, a learning-rate schedule, gradient clipping, an exponential moving
#   average (EMA) of the weights, checkpoints that can be resumed exactly;
# - how to read the result: error table, learning curves, parity plots; and how to use the model in ASE.
#
# **Prerequisites**: notebooks 01–07 (the model), or just `minimace.MACE` as a black box.
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697 v2): total energy $E=\sum_i (E_{0,z_i}+E_i)$
# ($E_i$ from the readouts of Eq. 13; $E_0$ as in the official code's `ScaleShiftMACE`), forces
# $-\partial E/\partial \mathbf r$, and the training details of its appendix
# (λ_E = 1, λ_F = 1000, AMSGrad, lr 0.01, batch 5, EMA 0.99 on rMD17).
#
# **Modes**: `MINIMACE_QUICK=1` (CI) trains a tiny model on the bundled GFN2-xTB set for about a minute on a CPU.
# Otherwise the notebook trains on rMD17 ethanol (950 train + 50 validation, the paper's protocol), with the
# paper's 256 channels on a GPU when there is one, or a 32-channel model for 20 minutes on a CPU.

# %%
import os
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet
from IPython.display import Image, display

from minimace import datasets
from minimace.calculator import MiniMACECalculator
from minimace.checkpoint import CheckpointError, load_checkpoint, load_model
from minimace.data import average_num_neighbors, energy_shift_force_scale, random_split
from minimace.graph import batch_graphs
from minimace.model import MACE
from minimace.train import (ExponentialMovingAverage, TrainConfig, loss_terms, metrics_from_predictions, predict,
                            resolve_device, seed_everything, train, weighted_loss)

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
DEVICE = resolve_device("auto")
GPU = DEVICE.type == "cuda"
dtype = torch.float64
seed_everything(0)
RUN_DIR = Path("runs") / "notebook_09"
print("quick mode" if QUICK else "full mode", "on", DEVICE)

# %% [markdown]
# ## 1. Data: reference energies, $E_0$ and statistics
#
# A data set holds total energies $E^{\rm ref}$ and forces $\mathbf F^{\rm ref}$. MACE writes
#
# $$ E = \sum_i \big(E_{0,z_i} + E_i\big), \qquad E_i = s\,\tilde E_i + \mu , $$
#
# with $E_{0,z}$ the energy of an isolated atom of element $z$ (from the data, not learned), $\tilde E_i$ the
# network's output, $\mu$ the mean interaction energy per atom and $s$ the RMS of the force components of the
# training set. The sum over neighbours in Eq. 8 is divided by $\bar n$, the mean number of neighbours.
# ($E_0$, $s$ and $\mu$ follow the official code's `ScaleShiftMACE`; the paper's Eq. 13 is the sum of the readouts.)

# %%
if QUICK:
    configs = datasets.bundled("train")
    e0s = datasets.bundled_e0s()
    tests = datasets.bundled("test")
else:
    configs = datasets.load_shared("botnet_ethanol", "train", index=":1000")
    e0s = datasets.shared_e0s("botnet_ethanol")
    tests = datasets.load_shared("botnet_ethanol", "test")
train_c, valid_c = random_split(configs, (0.95, 0.05), seed=0)
r_max = 4.5 if QUICK else 5.0
train_g, valid_g, test_g = ([c.to_graph(r_max, dtype) for c in cs] for cs in (train_c, valid_c, tests))
mu, s = energy_shift_force_scale(train_c, e0s)
n_bar = average_num_neighbors(train_g)
print(f"{len(train_g)} train / {len(valid_g)} valid / {len(test_g)} test; E0s {e0s}")
print(f"shift μ = {mu:.4f} eV/atom, scale s = {s:.4f} eV/Å, mean neighbours n̄ = {n_bar:.2f}")

# %% [markdown]
# *line ↔ equation*: `energy_shift_force_scale` returns $\mu = \langle (E^{\rm ref} - \sum_i E_{0,z_i})/N\rangle$
# and $s = \sqrt{\langle F_{i\alpha}^2\rangle}$; `average_num_neighbors` is $\bar n$ = edges / atoms.
# Check: $\mu$ recomputed by hand from the configurations.

# %%
by_hand = np.mean([(c.energy - sum(e0s[int(z)] for z in c.atomic_numbers)) / len(c) for c in train_c])
assert abs(by_hand - mu) < 1e-12
assert set(int(z) for c in train_c for z in c.atomic_numbers) <= set(e0s)

# %% [markdown]
# ## 2. The model
#
# Quick mode: 16 channels, $l_{\max}=2$, correlation 2. Full mode: the paper's $l_{\max}=3$, correlation
# $\nu=3$, 2 layers, with 256 channels on a GPU (32 on a CPU). Right after construction the energy per atom is
# already close to the reference: $E_0$ and $\mu$ carry the large part, the network learns the rest.

# %%
zs = sorted({int(z) for c in train_c for z in c.atomic_numbers})  # elements of the data
channels = 16 if QUICK else (256 if GPU else 32)
model = MACE(r_max=r_max, num_bessel=8, num_polynomial_cutoff=5, max_ell=2 if QUICK else 3,
             correlation=2 if QUICK else 3, num_interactions=2, hidden_irreps=f"{channels}x0e+{channels}x1o",
             MLP_irreps="16x0e", radial_MLP=[32, 32] if QUICK else [64, 64, 64], avg_num_neighbors=n_bar,
             atomic_numbers=zs, atomic_energies=[e0s[z] for z in zs], atomic_inter_scale=s, atomic_inter_shift=mu)
untrained = metrics_from_predictions(predict(model, valid_g, 10))
print(f"{sum(p.numel() for p in model.parameters())} parameters; untrained: "
      f"E MAE {untrained['E_mae_per_atom']:.1f} meV/atom, F MAE {untrained['F_mae']:.0f} meV/Å")
assert untrained["E_mae_per_atom"] < 1000 * s  # within the energy scale set by E0 and μ

# %% [markdown]
# ## 3. The loss
#
# For a batch of $B$ configurations with $N_b$ atoms each (paper appendix; mace-torch's weighted loss):
#
# $$ \mathcal L = \frac{\lambda_E}{B}\sum_b \Big(\frac{\hat E_b - E_b}{N_b}\Big)^2
#    + \frac{\lambda_F}{3N}\sum_{i,\alpha}\big(\hat F_{i\alpha} - F_{i\alpha}\big)^2 . $$
#
# Energies are compared *per atom* so that large and small molecules count alike; a configuration has one
# energy but $3N$ force components, and forces carry the shape of the energy surface, hence $\lambda_F \gg \lambda_E$
# on rMD17. The ratio is a choice: the short quick-mode run on the bundled set of small molecules uses equal
# weights for energies and forces (`TrainConfig` in section 5).

# %%
batch = batch_graphs(train_g[:5])
pred = model(batch, compute_forces=True)
weights = {"energy": 1.0, "forces": 1000.0}
loss = weighted_loss(loss_terms(pred, batch), weights)
n = (batch["ptr"][1:] - batch["ptr"][:-1]).to(dtype)
by_hand = (((pred["energy"] - batch["energy"]) / n) ** 2).mean() \
    + 1000 * ((pred["forces"] - batch["forces"]) ** 2).mean()
print(f"loss {loss.item():.6f}  by hand {by_hand.item():.6f}")

# %% [markdown]
# *line ↔ equation*: `loss_terms` returns the two sums and their counts ($B$ and $3N$); `weighted_loss`
# multiplies by λ and divides by the counts. Check: the same number from the formula written out.

# %%
assert torch.allclose(loss, by_hand, rtol=1e-12, atol=0)

# %% [markdown]
# ## 4. Exponential moving average of the weights
#
# After each optimiser step, $\bar\theta \leftarrow d\,\bar\theta + (1-d)\,\theta$ with $d = 0.99$ (and a
# warm-up $d_n = \min(0.99, \frac{1+n}{10+n})$). Validation, checkpoints of the best model and the final model
# use $\bar\theta$: it averages out the noise of the last steps.

# %%
ema = ExponentialMovingAverage(model, decay=0.99)
before = {k: v.clone() for k, v in ema.shadow.items()}
with torch.no_grad():
    for p in model.parameters():
        p.add_(0.01)
ema.update(model)
d = min(0.99, 2 / 11)
name = next(iter(before))
assert torch.allclose(ema.shadow[name], d * before[name] + (1 - d) * (before[name] + 0.01), atol=1e-14)
with torch.no_grad():  # undo the demonstration step
    for p in model.parameters():
        p.sub_(0.01)

# %% [markdown]
# *line ↔ equation*: `ema.update` applies the average with the warm-up decay; `ema.swap(model)` exchanges raw
# and averaged weights (twice = no change). The check above is the formula for the first update.
#
# ## 5. Training
#
# `minimace.train.train` runs the loop: shuffled batches (seeded), the loss above, backpropagation through
# the forces (second derivatives), gradient clipping at norm 10, an AMSGrad step, the EMA update; after each
# epoch the EMA weights are evaluated on the validation set, ReduceLROnPlateau steps on that loss, and a
# checkpoint is written atomically (`checkpoint.pt`, plus `best.pt` when the validation loss improved).

# %%
config = TrainConfig(energy_weight=100.0 if QUICK else 1.0, forces_weight=100.0 if QUICK else 1000.0, lr=0.01,
                     batch_size=5, max_epochs=200 if QUICK else 2000, scheduler_patience=5 if QUICK else 50,
                     time_budget=0.75 if QUICK else (None if GPU else 20.0), swa_start=None if QUICK else 1500,
                     device=str(DEVICE), dtype="float64", seed=0, progress=not QUICK)
result = train(model, train_g, valid_g, config, run_dir=RUN_DIR, test_sets={"test": test_g},
               log=lambda line: print(line) if "epoch" not in line or line.startswith("epoch    0") else None)
history = result["history"]
print(f"{len(history)} epochs; stopped by {result['stopped']}; best epoch {result['best_epoch']}")

# %% [markdown]
# *line ↔ equation*: every row of `history` holds the mean training loss $\mathcal L$ of the epoch and the
# validation loss of the EMA weights. Check: the validation loss went down, and the model now beats the
# untrained one on forces.

# %%
assert history[-1]["valid_loss"] < history[0]["valid_loss"]
assert result["metrics"]["test"]["F_mae"] < untrained["F_mae"]

# %% [markdown]
# ## 6. Reading the result
#
# The error table (saved as `errors.txt`), the learning curves and the parity plots come from the same
# predictions. Published MACE errors on rMD17 ethanol: E 0.4 meV, F 2.1 meV/Å (converged, 256 channels).

# %%
print(result["table"])
display(Image(filename=str(RUN_DIR / "learning_curves.png")))
display(Image(filename=str(RUN_DIR / "parity.png")))

# %% [markdown]
# *line ↔ equation*: E MAE per atom is $\langle |\hat E_b - E_b| / N_b\rangle$, F MAE is
# $\langle|\hat F_{i\alpha} - F_{i\alpha}|\rangle$ over all components. Check: the test force MAE lies well below
# the force scale $s$ (a model predicting zero forces would have an error of order $s$).

# %%
assert result["metrics"]["test"]["F_mae"] < 0.5 * 1000 * s

# %% [markdown]
# ## 7. Checkpoints
#
# A checkpoint holds only tensors and plain Python values, so `torch.load(..., weights_only=True)` reads it
# without running any code from the file. `checkpoint.pt` holds everything needed to continue the run exactly
# (weights, EMA, optimiser and scheduler states, epoch, random generator states); `best.pt` holds the model.
# A damaged file gives a clear error instead of a crash deep inside `torch.load`.

# %%
state = torch.load(RUN_DIR / "checkpoint.pt", weights_only=True)
print(state["format"], state["format_version"], "minimace", state["minimace_version"], "epoch",
      state["run_state"]["epoch"], "keys:", sorted(state))
best = load_model(RUN_DIR / "best.pt")
same = predict(best, test_g[:10], 10)["pred_energy"], predict(model, test_g[:10], 10)["pred_energy"]
truncated = RUN_DIR / "truncated.pt"
truncated.write_bytes((RUN_DIR / "best.pt").read_bytes()[:1000])
try:
    load_checkpoint(truncated)
except CheckpointError as err:
    print("CheckpointError:", str(err)[:90], "...")

# %% [markdown]
# *line ↔ equation*: `load_model` rebuilds `MACE(**config)` and loads the averaged weights. Check: the model
# from `best.pt` predicts exactly what the trained model in memory predicts.

# %%
assert torch.equal(*same)

# %% [markdown]
# ## 8. Using the model: an ASE calculator and a short MD run
#
# `MiniMACECalculator` gives ASE energies, forces (and stress for periodic cells). With forces that are the
# exact gradient of the energy, velocity-Verlet MD conserves the total energy up to $O(\Delta t^2)$.

# %%
atoms = tests[0].to_atoms()
atoms.calc = MiniMACECalculator(RUN_DIR / "best.pt", dtype="float64")
thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
e_start = atoms.get_total_energy()
VelocityVerlet(atoms, timestep=0.25 * units.fs).run(40 if QUICK else 400)
drift = abs(atoms.get_total_energy() - e_start)
print(f"total energy drift over {40 if QUICK else 400} steps of 0.25 fs: {1000 * drift:.3f} meV")

# %% [markdown]
# *line ↔ equation*: `VelocityVerlet` integrates Newton's equations with $\mathbf F = -\partial E/\partial\mathbf r$
# from the calculator. Check: the drift is small compared with the kinetic energy at 300 K
# ($\tfrac32 N k_B T$).

# %%
assert drift < 0.05 * 1.5 * len(atoms) * units.kB * 300

# %% [markdown]
# ## Summary
#
# The same run from the command line (flags or a YAML file, see `configs/`):
#
# ```bash
# minimace train --train-file train.xyz --valid-fraction 0.05 --test-file test.xyz --E0s isolated \
#     --E0s-file isolated_atoms.xyz --hidden-irreps 32x0e+32x1o --max-epochs 500 --run-dir runs/ethanol
# minimace train --config configs/rmd17_aspirin.yaml      # the paper's recipe
# minimace evaluate runs/ethanol/best.pt test.xyz         # error table + predictions as extxyz
# torchrun --nproc-per-node 4 -m minimace.cli train ...   # data parallel on 4 GPUs
# ```
#
# A run that is stopped (time budget, Ctrl-C, a crash) continues with `--restart run/checkpoint.pt`, exactly as
# if it had not stopped; a loss that becomes NaN stops the run with the epoch, the batch and its configurations,
# and the last good checkpoint is kept.
