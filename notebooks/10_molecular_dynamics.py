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
# # 10 — Molecular dynamics with a MACE trained here
#
# **What you will learn**
# - to train a small MACE in the lesson and run constant-energy (NVE) molecular dynamics with it through ASE
#   (`MiniMACECalculator` + velocity Verlet);
# - why the total energy is conserved: the forces are the exact gradient $\mathbf F = -\partial E/\partial \mathbf r$
#   of the model's energy, and velocity Verlet is a symplectic integrator whose energy error is $O(\Delta t^2)$ and
#   does not grow;
# - how to choose the time step: the energy fluctuation as a function of $\Delta t$, measured;
# - how to check the dynamics against the reference: bond-length distributions of the MD against those of the data
#   the model was trained on.
#
# **Prerequisites**: notebook 09 (training, the calculator), or `minimace.MACE` as a black box.
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697 v2): the site energies of Eq. 13 summed to
# $E$, forces by differentiation. Velocity Verlet: Swope, Andersen, Berens, Wilson, J. Chem. Phys. 76, 637 (1982).
#
# **Modes**: `MINIMACE_QUICK=1` (CI) trains on the bundled GFN2-xTB ethanol frames for a fixed, small number of
# epochs (not a time budget: as many steps on a slow machine as on a fast one) and runs short
# trajectories (the whole notebook fits the CPU budget of CI); otherwise rMD17 ethanol from the shared data
# folder (bundled data when it is absent), a longer training and longer trajectories.

# %%
import os

import ase
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from minimace import datasets
from minimace.calculator import MiniMACECalculator, run_nve
from minimace.data import DataError, average_num_neighbors, energy_shift_force_scale, random_split
from minimace.model import MACE
from minimace.train import TrainConfig, resolve_device, seed_everything, train

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
DEVICE = resolve_device("auto")
seed_everything(0)
print("quick mode" if QUICK else "full mode", "on", DEVICE)

# %% [markdown]
# ## 1. Reference data and a model trained on it
#
# The reference is a molecular-dynamics data set of ethanol: the bundled GFN2-xTB frames (Langevin MD, the
# temperature is stored with each frame) in quick mode, rMD17 ethanol (DFT) otherwise. The same frames give the
# bond-length distributions the MD is compared with in section 4.

# %%
try:
    if QUICK:
        raise DataError("quick mode uses the bundled data")
    configs = datasets.load_shared("botnet_ethanol", "train", index=":1000")
    reference = datasets.load_shared("botnet_ethanol", "test")
    e0s, T_ref = datasets.shared_e0s("botnet_ethanol"), 500.0                       # rMD17: MD at 500 K
except DataError:
    configs = [c for c in datasets.bundled("train") if c.config_type == "ethanol"]
    reference = configs + [c for c in datasets.bundled("test") if c.config_type == "ethanol"]
    e0s, T_ref = datasets.bundled_e0s(), float(configs[0].info["md_temperature"])
train_c, valid_c = random_split(configs, (0.9, 0.1), seed=0)
r_max = 4.0 if QUICK else 5.0
train_g, valid_g = ([c.to_graph(r_max) for c in cs] for cs in (train_c, valid_c))
mu, s = energy_shift_force_scale(train_c, e0s)
zs = [1, 6, 8]
channels = 8 if QUICK else 32
model = MACE(r_max=r_max, num_bessel=6, max_ell=1 if QUICK else 2, correlation=2 if QUICK else 3,
             num_interactions=2, hidden_irreps=f"{channels}x0e+{channels}x1o", MLP_irreps="8x0e",
             radial_MLP=[16, 16] if QUICK else [64, 64], avg_num_neighbors=average_num_neighbors(train_g),
             atomic_numbers=zs, atomic_energies=[e0s[z] for z in zs], atomic_inter_scale=s, atomic_inter_shift=mu)
config = TrainConfig(energy_weight=10.0, forces_weight=100.0, lr=0.01, batch_size=5,
                     max_epochs=10 if QUICK else 300, time_budget=None if QUICK else 15.0, scheduler_patience=5,
                     device=str(DEVICE), dtype="float64", seed=0, progress=False)
result = train(model, train_g, valid_g, config, run_dir=os.path.join("runs", "notebook_10"), log=lambda line: None)
errors = result["metrics"]["valid"]
print(f"{len(train_g)} training frames, reference MD at {T_ref:g} K; {len(result['history'])} epochs")
print(f"validation: E MAE {errors['E_mae_per_atom']:.1f} meV/atom, F MAE {errors['F_mae']:.0f} meV/Å")

# %% [markdown]
# *Line ↔ equation*: the model is trained on energies and forces as in notebook 09; short training gives a rough
# potential, which is enough here: energy conservation is a property of the integrator and of forces that are the
# gradient of *some* smooth energy, however accurate. Check: the training lowered the validation loss.

# %%
assert result["history"][-1]["valid_loss"] < result["history"][0]["valid_loss"]

# %% [markdown]
# ## 2. NVE dynamics: the total energy is conserved
#
# Start from a reference frame (its positions are already thermal), draw velocities from the Maxwell–Boltzmann
# distribution at the reference temperature (no centre-of-mass motion or rotation), and integrate Newton's
# equations with velocity Verlet,
#
# $$ \mathbf v(t + \tfrac{\Delta t}{2}) = \mathbf v(t) + \tfrac{\Delta t}{2m}\mathbf F(t),\quad
#    \mathbf r(t + \Delta t) = \mathbf r(t) + \Delta t\, \mathbf v(t + \tfrac{\Delta t}{2}),\quad
#    \mathbf v(t + \Delta t) = \mathbf v(t + \tfrac{\Delta t}{2}) + \tfrac{\Delta t}{2m}\mathbf F(t + \Delta t), $$
#
# with $\mathbf F = -\partial E/\partial \mathbf r$ from `MiniMACECalculator` (`run_nve` wraps ASE's `VelocityVerlet`).

# %%
calc = MiniMACECalculator(model, device=str(DEVICE), dtype="float64")
start = reference[-1]


def fresh_atoms():
    atoms = ase.Atoms(numbers=start.atomic_numbers, positions=start.positions)
    atoms.calc = calc
    return atoms


DT, N_STEPS = 0.5, (400 if QUICK else 4000)
nve = run_nve(fresh_atoms(), DT, N_STEPS, temperature_K=T_ref, seed=0)
e0 = nve["total"][0]
kinetic_T = nve["kinetic"].mean() / (1.5 * len(start) * ase.units.kB)
ratio = nve["total"].std() / nve["kinetic"].std()
print(f"{N_STEPS} steps of {DT} fs = {nve['time'][-1]:.0f} fs; mean kinetic temperature {kinetic_T:.0f} K")
print(f"std of E_total {1000 * nve['total'].std():.3f} meV vs std of E_kinetic {1000 * nve['kinetic'].std():.1f} meV"
      f" (ratio {ratio:.1e})")

fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, height_ratios=[2, 1])
ax.plot(nve["time"], nve["kinetic"], label="kinetic", color="tab:red", lw=1)
ax.plot(nve["time"], nve["potential"] - e0, label="potential − E_total(0)", color="tab:blue", lw=1)
ax.plot(nve["time"], nve["total"] - e0, label="total − E_total(0)", color="k", lw=2)
ax.set(ylabel="energy (eV)", title=f"NVE ethanol, MACE trained above, Δt = {DT} fs")
ax.legend(loc="upper right", fontsize=8)
ax2.plot(nve["time"], 1000 * (nve["total"] - e0), color="k", lw=1)
ax2.set(xlabel="time (fs)", ylabel="E_total − E_total(0)\n(meV)")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Line ↔ equation*: the kinetic and potential energies exchange energy (red and blue mirror each other) while their
# sum, black, stays flat; the lower panel zooms into it. Check: the fluctuation of the total energy is a small
# fraction of that of the kinetic energy (the printed ratio).

# %%
assert ratio < 0.05, ratio
assert np.isfinite(nve["positions"]).all()

# %% [markdown]
# ## 3. How large a time step? Energy error against $\Delta t$
#
# The same start, the same simulated time, several time steps. For velocity Verlet the total energy oscillates
# around its initial value with an amplitude $\propto \Delta t^2$ (it is the exact energy of a nearby "shadow"
# Hamiltonian) instead of drifting away; a step too large for the fastest vibration (the C–H stretch) breaks
# that. The sweep below measures the amplitude (max − min of $E_\text{total}$) and the drift (slope of a
# straight-line fit); the grey line is $\propto \Delta t^2$.

# %%
SWEEP = (0.25, 0.5, 1.0, 2.0)
SIM_TIME = 50.0 if QUICK else 500.0
runs = {dt: run_nve(fresh_atoms(), dt, int(round(SIM_TIME / dt)), temperature_K=T_ref, seed=0) for dt in SWEEP}
amplitude = {dt: np.ptp(r["total"]) for dt, r in runs.items()}
drift = {dt: np.polyfit(r["time"], r["total"], 1)[0] * 1e6 for dt, r in runs.items()}   # meV/ps
slope = np.polyfit(np.log(SWEEP), np.log([amplitude[dt] for dt in SWEEP]), 1)[0]
for dt in SWEEP:
    print(f"Δt = {dt:<4} fs: amplitude {1000 * amplitude[dt]:8.3f} meV, drift {drift[dt]:+9.2f} meV/ps")
print(f"log-log slope of the amplitude: {slope:.2f}")


def plot_sweep(runs, amplitude):
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for dt, r in runs.items():
        ax.plot(r["time"], 1000 * (r["total"] - r["total"][0]), label=f"Δt = {dt} fs", lw=1)
    ax.set(xlabel="time (fs)", ylabel="E_total − E_total(0) (meV)", title="total energy, one start, several Δt")
    ax.legend(fontsize=8)
    dts = np.array(list(amplitude))
    amps = 1000 * np.array(list(amplitude.values()))
    ax2.loglog(dts, amps, "o-", color="k", label="measured")
    ax2.loglog(dts, amps[0] * (dts / dts[0]) ** 2, "--", color="0.6", label="∝ Δt²")
    ax2.set(xlabel="Δt (fs)", ylabel="amplitude of E_total (meV)", title="energy error against time step")
    ax2.set_xticks(dts, labels=[f"{dt:g}" for dt in dts])
    ax2.minorticks_off()
    ax2.legend(fontsize=8)
    fig.tight_layout()
    plt.show()


plot_sweep(runs, amplitude)

# %% [markdown]
# *Line ↔ equation*: `amplitude` is $\max_t E_\text{total} - \min_t E_\text{total}$ of each run; `slope` the exponent
# of its power law in $\Delta t$. Check: the exponent is close to 2, as velocity Verlet's error analysis says.

# %%
assert 1.5 < slope < 2.6, slope

# %% [markdown]
# In Jupyter, pick a time step and run it (the button starts a run of the same simulated time from the same start;
# the static sweep above is what a non-interactive rendering shows):

# %%
def try_time_step(dt=1.0):
    r = run_nve(fresh_atoms(), dt, int(round(SIM_TIME / dt)), temperature_K=T_ref, seed=0)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(runs[SWEEP[0]]["time"], 1000 * (runs[SWEEP[0]]["total"] - runs[SWEEP[0]]["total"][0]), color="0.6",
            label=f"Δt = {SWEEP[0]} fs (reference)")
    ax.plot(r["time"], 1000 * (r["total"] - r["total"][0]), color="k", label=f"Δt = {dt} fs")
    ax.set(xlabel="time (fs)", ylabel="E_total − E_total(0) (meV)",
           title=f"Δt = {dt} fs: amplitude {1000 * np.ptp(r['total']):.2f} meV")
    ax.legend(fontsize=8)
    plt.show()


widgets.interactive(try_time_step, {"manual": True}, dt=widgets.FloatSlider(value=1.0, min=0.1, max=3.0, step=0.1))

# %% [markdown]
# ## 4. Structure: bond lengths of the MD against the reference
#
# The bonds of ethanol from the first frame (atoms closer than 1.2 × the sum of their covalent radii), then the
# length of every C–H, C–C and C–O bond in every MD frame and in every reference frame. The reference frames come
# from MD at the same temperature with the reference method, so the two distributions should overlap; how well they
# agree measures the trained potential, not the integrator.

# %%
def bonds(numbers, positions):
    """Pairs (a, b) of bonded atoms and the element symbols of each pair."""
    radii = ase.data.covalent_radii[numbers]
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    a, b = np.nonzero(np.triu(d < 1.2 * (radii[:, None] + radii[None]), k=1))
    symbols = ["–".join(sorted((ase.data.chemical_symbols[numbers[i]], ase.data.chemical_symbols[numbers[j]]),
                               key=lambda x: "CHO".index(x))) for i, j in zip(a, b)]
    return a, b, symbols


a, b, kinds = bonds(start.atomic_numbers, start.positions)
kinds = np.array(kinds)
md_frames = nve["positions"][len(nve["positions"]) // 10:]           # the first 10 % discarded
ref_frames = np.stack([c.positions for c in reference])
lengths = {name: {kind: np.linalg.norm(frames[:, b[kinds == kind]] - frames[:, a[kinds == kind]], axis=-1).ravel()
                  for kind in ("C–H", "C–C", "C–O")}
           for name, frames in (("MD", md_frames), ("reference", ref_frames))}
for kind in ("C–H", "C–C", "C–O"):
    md, ref = lengths["MD"][kind], lengths["reference"][kind]
    print(f"{kind}: MD {md.mean():.3f} ± {md.std():.3f} Å ({md.size} values) | "
          f"reference {ref.mean():.3f} ± {ref.std():.3f} Å ({ref.size} values)")

fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, kind in zip(axes, ("C–H", "C–C", "C–O")):
    bins = np.linspace(min(lengths["MD"][kind].min(), lengths["reference"][kind].min()),
                       max(lengths["MD"][kind].max(), lengths["reference"][kind].max()), 30)
    ax.hist(lengths["reference"][kind], bins=bins, density=True, alpha=0.5,
            label=f"reference ({len(reference)} frames)")
    ax.hist(lengths["MD"][kind], bins=bins, density=True, histtype="step", lw=2, color="k",
            label=f"MACE NVE ({len(md_frames)} frames)")
    ax.set(xlabel=f"{kind} bond length (Å)", ylabel="density")
axes[0].legend(fontsize=8)
fig.suptitle(f"bond lengths: NVE with the trained MACE against the reference MD ({T_ref:g} K)")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Line ↔ equation*: each histogram is the distribution of $|\mathbf r_a - \mathbf r_b|$ over frames and bonds of one
# kind. Check: the mean bond lengths of the MD agree with the reference ones to within one standard deviation of
# the reference distribution — the trained potential holds the molecule together at the right geometry.

# %%
for kind in ("C–H", "C–C", "C–O"):
    md, ref = lengths["MD"][kind], lengths["reference"][kind]
    assert abs(md.mean() - ref.mean()) < ref.std(), (kind, md.mean(), ref.mean(), ref.std())

# %% [markdown]
# ## Summary
#
# - `MiniMACECalculator(model)` makes any minimace model an ASE calculator; `run_nve(atoms, Δt, n_steps,
#   temperature_K)` runs velocity-Verlet NVE and records the energies and positions.
# - The total energy stays flat while kinetic and potential energy exchange, because the forces are the exact
#   gradient of the model's energy; its fluctuation grows as $\Delta t^2$ (the sweep of section 3).
# - Bond-length distributions against the reference frames test the potential itself; longer training (full mode)
#   and longer runs tighten the comparison.
