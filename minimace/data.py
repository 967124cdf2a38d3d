"""Datasets for training: reading labelled structures, E0s, statistics, splits and batching.

minimace, like the official MACE code (ScaleShiftMACE), writes the total energy as E = Σ_i (E0_{z_i} + E_i), E_i
from the readouts of MACE Eq. 13 (Batatia et al. 2022, arXiv:2206.07697): the isolated-atom energies E0 are read
from the data (``config_type=IsolatedAtom``) or fitted by least squares, and the learned part is normalised by a
per-atom energy shift and a force-RMS scale. This module reads extxyz (and every format ASE reads) with configurable
label keys into :class:`Configuration` records,
computes those statistics, splits with a seed, and turns configurations into graphs (``minimace.graph``)
batched by a ``torch.utils.data.DataLoader``, or into batches of a bounded number of edges
(:func:`edge_budget_batches`). Data larger than memory are preprocessed into HDF5 shards (``minimace.shards``).

Units: Å, eV, eV/Å, stress eV/Å³ (ASE sign, σ = (1/V) ∂E/∂ε), virials eV (``virials = -stress * volume``).

Every problem with the input raises :class:`DataError` naming the file, the frame (and the line of its header
for extxyz), the key and the atom index where they apply.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path

import ase
import ase.io
from ase.io.formats import string2index
import numpy as np
import torch

from .graph import DataError, KeySpec, _available_keys, atoms_to_graph, batch_graphs, read_labels, validate_structure

__all__ = [
    "DataError",
    "KeySpec",
    "Configuration",
    "read_configurations",
    "is_isolated_atom",
    "isolated_atom_energies",
    "split_isolated_atoms",
    "fit_e0s",
    "average_num_neighbors",
    "energy_shift_force_scale",
    "random_split",
    "stress_to_virials",
    "virials_to_stress",
    "GraphDataset",
    "make_loader",
    "num_edges",
    "edge_budget_batches",
]

ISOLATED_ATOM_TYPES = {"isolatedatom", "isolated_atom", "isolated-atom", "e0"}


# --------------------------------------------------------------------------------------------------
# The record
# --------------------------------------------------------------------------------------------------


@dataclass
class Configuration:
    """One labelled structure. Labels are float64 arrays or ``None`` when the data have none.

    ``stress``/``virials`` are 3x3; ``weights`` holds per-property loss weights (default 1);
    ``source`` says where it came from (``"train.xyz, frame 12 (line 145)"``), used in error messages.
    """

    atomic_numbers: np.ndarray  # [N]
    positions: np.ndarray  # [N, 3]
    cell: np.ndarray  # [3, 3]
    pbc: np.ndarray  # [3]
    energy: float | None = None
    forces: np.ndarray | None = None  # [N, 3]
    stress: np.ndarray | None = None  # [3, 3]
    virials: np.ndarray | None = None  # [3, 3]
    weights: dict = field(default_factory=dict)
    config_type: str = "Default"
    info: dict = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return len(self.atomic_numbers)

    @classmethod
    def from_atoms(cls, atoms: ase.Atoms, keys: KeySpec = KeySpec(), source: str = "") -> "Configuration":
        """Validate ``atoms`` (structure and labels) and read its labels with ``keys``."""
        try:
            validate_structure(atoms, coincident=False)
            labels = read_labels(atoms, keys)
        except DataError as error:
            raise DataError(f"{source}: {error}" if source else str(error)) from None
        return cls(
            atomic_numbers=np.asarray(atoms.numbers, dtype=np.int64),
            positions=np.asarray(atoms.positions, dtype=np.float64),
            cell=np.asarray(atoms.cell.array, dtype=np.float64),
            pbc=np.asarray(atoms.pbc, dtype=bool),
            energy=float(labels["energy"][0]) if "energy" in labels else None,
            forces=labels.get("forces"),
            stress=labels["stress"][0] if "stress" in labels else None,
            virials=labels["virials"][0] if "virials" in labels else None,
            weights={k: float(v[0]) for k, v in labels.items() if k.endswith("_weight")},
            config_type=str(atoms.info.get("config_type", "Default")),
            info={k: v for k, v in atoms.info.items() if k not in set(vars(keys).values())},
            source=source,
        )

    def to_atoms(self) -> ase.Atoms:
        """An ``ase.Atoms`` with the labels under the default keys of :class:`KeySpec`."""
        atoms = ase.Atoms(numbers=self.atomic_numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)
        atoms.info.update(self.info, config_type=self.config_type)
        keys = KeySpec()
        for name, value in [("energy", self.energy), ("stress", self.stress), ("virials", self.virials)]:
            if value is not None:
                atoms.info[getattr(keys, f"{name}_key")] = value
        if self.forces is not None:
            atoms.arrays[keys.forces_key] = self.forces
        for name, w in self.weights.items():  # "energy_weight" → info["config_energy_weight"]
            atoms.info[getattr(keys, f"{name}_key")] = w
        return atoms

    def to_graph(self, r_max: float, dtype: torch.dtype = torch.float64) -> dict:
        """The batch dict of this configuration (B = 1), see ``minimace.graph.atoms_to_graph``."""
        try:
            return atoms_to_graph(self.to_atoms(), r_max, dtype=dtype)
        except DataError as error:
            raise DataError(f"{self.source}: {error}" if self.source else str(error)) from None


# --------------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------------


def _scan_xyz(text: str, path: str) -> list[tuple[int, int]]:
    """(first line, number of atoms) of every frame of an (ext)xyz text; line numbers start at 1.

    Catches what ASE reports obscurely or not at all: a count line that is not a number, and a file that
    ends inside a frame (truncation).
    """
    lines = text.splitlines()
    frames, k = [], 0
    while k < len(lines):
        if not lines[k].strip():
            if all(not line.strip() for line in lines[k:]):
                break  # trailing blank lines
            raise DataError(f"{path}, frame {len(frames)}, line {k + 1}: blank line where the number of atoms should be")
        try:
            n_atoms = int(lines[k].split()[0])
        except ValueError:
            raise DataError(
                f"{path}, frame {len(frames)}, line {k + 1}: expected the number of atoms, got {lines[k][:60]!r}"
            ) from None
        if n_atoms < 0:
            raise DataError(f"{path}, frame {len(frames)}, line {k + 1}: negative number of atoms {n_atoms}")
        if k + 2 + n_atoms > len(lines):
            raise DataError(
                f"{path}, frame {len(frames)}, line {k + 1}: truncated — the frame announces {n_atoms} atoms but "
                f"the file ends after {max(len(lines) - k - 2, 0)} atom lines"
            )
        frames.append((k + 1, n_atoms))
        k += 2 + n_atoms
    return frames


def _bad_atom_line(text: str, first_line: int, n_atoms: int) -> str:
    """Point at the first atom line of a frame whose number of columns differs from the others."""
    lines = text.splitlines()[first_line + 1 : first_line + 1 + n_atoms]
    if not lines:
        return ""
    width = len(lines[0].split())
    for offset, line in enumerate(lines):
        if len(line.split()) != width:
            return f"; line {first_line + 2 + offset} (atom {offset}) has {len(line.split())} columns, atom 0 has {width}"
    return ""


def _read_frames(path: Path, index, format: str | None):
    """[(atoms, source)] of a file; extxyz/xyz are scanned first so that errors name frame and line."""
    fmt = format or ("extxyz" if path.suffix.lower() in {".xyz", ".extxyz"} else None)
    if fmt not in {"extxyz", "xyz"}:
        try:
            frames = ase.io.read(path, index=index, format=fmt)
        except Exception as error:  # noqa: BLE001 — any reader failure is bad input; report it plainly
            raise DataError(f"{path}: ASE cannot read it ({type(error).__name__}: {error})") from None
        frames = frames if isinstance(frames, list) else [frames]
        return [(atoms, f"{path}, frame {k}") for k, atoms in enumerate(frames)]
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (cannot decode it as UTF-8)") from None
    scan = _scan_xyz(text, str(path))
    try:
        selected = list(range(len(scan)))[string2index(index) if isinstance(index, str) else index]
    except IndexError:
        raise DataError(f"{path}: has {len(scan)} frames, no frame {index}") from None
    selected = selected if isinstance(selected, list) else [selected]
    lines = text.splitlines(keepends=True)
    out = []
    for k in selected:
        first, n_atoms = scan[k]
        chunk = "".join(lines[first - 1 : first + 1 + n_atoms])
        where = f"{path}, frame {k} (line {first})"
        try:
            atoms = ase.io.read(io.StringIO(chunk), format=fmt)
        except Exception as error:  # noqa: BLE001
            hint = _bad_atom_line(text, first, n_atoms)
            raise DataError(f"{where}: malformed frame ({type(error).__name__}: {error}){hint}") from None
        out.append((atoms, where))
    return out


def read_configurations(
    path,
    keys: KeySpec | None = None,
    *,
    index=":",
    format: str | None = None,
    required: tuple[str, ...] = ("energy", "forces"),
    **key_names,
) -> list[Configuration]:
    """Read labelled structures from ``path`` (extxyz, or anything ``ase.io.read`` understands).

    Parameters
    ----------
    path : str or Path
        The file.
    keys : KeySpec, optional
        Label keys; or give them as keywords, e.g. ``energy_key="energy_xtb", forces_key="forces_xtb"``
        (keywords override the fields of ``keys``).
    index : str, int or slice
        Frames to read (ASE syntax, e.g. ``":"``, ``"10:20"``, ``-1``).
    format : str, optional
        ASE format name; extxyz for ``.xyz``/``.extxyz`` files.
    required : tuple of str
        Labels every configuration must have ("energy", "forces", "stress", "virials"); forces are not
        required of one-atom structures (they are zero). Use ``()`` for unlabelled structures.

    Returns
    -------
    list of Configuration

    Raises
    ------
    DataError
        Missing/malformed/truncated file, a missing required label (the message lists the keys the frame
        has), labels of the wrong shape or with non-finite values, bad structures (see
        ``minimace.graph.validate_structure``). The message names file, frame, line, key and atom.
    """
    keys = dataclasses.replace(keys or KeySpec(), **key_names)  # keywords override fields of ``keys``
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    configs = []
    for atoms, where in _read_frames(path, index, format):
        config = Configuration.from_atoms(atoms, keys, source=where)
        for name in required:
            if getattr(config, name) is None and not (name == "forces" and len(config) == 1):
                raise DataError(
                    f"{where}: no {name} under key {getattr(keys, name + '_key')!r}; the frame has "
                    f"{_available_keys(atoms)}. Pass {name}_key=... (or required=() for unlabelled data)"
                )
        configs.append(config)
    return configs


# --------------------------------------------------------------------------------------------------
# E0s and statistics
# --------------------------------------------------------------------------------------------------


def is_isolated_atom(config: Configuration) -> bool:
    """``config_type`` isolated_atom / IsolatedAtom (any case), or a one-atom non-periodic structure.

    An untagged one-atom *periodic* structure is a crystal (e.g. a primitive fcc cell), not an isolated atom.
    """
    tagged = config.config_type.lower() in ISOLATED_ATOM_TYPES
    return tagged or (len(config) == 1 and not config.pbc.any())


def isolated_atom_energies(configs: list[Configuration]) -> dict[int, float]:
    """E0_z from the isolated-atom entries; repeated entries must agree (to 1e-6 eV)."""
    e0s, origin = {}, {}
    for config in configs:
        if not is_isolated_atom(config) or config.energy is None:
            continue
        if len(config) != 1:
            raise DataError(f"{config.source}: config_type {config.config_type!r} but {len(config)} atoms")
        z = int(config.atomic_numbers[0])
        if z in e0s and abs(e0s[z] - config.energy) > 1e-6:
            raise DataError(f"two different isolated-atom energies for Z={z}: {origin[z]} and {config.source}")
        e0s[z], origin[z] = config.energy, config.source
    return dict(sorted(e0s.items()))


def split_isolated_atoms(configs: list[Configuration]) -> tuple[dict[int, float], list[Configuration]]:
    """(E0s from the isolated atoms, the remaining configurations)."""
    return isolated_atom_energies(configs), [c for c in configs if not is_isolated_atom(c)]


def fit_e0s(configs: list[Configuration], atomic_numbers=None) -> dict[int, float]:
    """E0s by least squares: E_c ≈ Σ_z n_{c,z} E0_z over all configurations with an energy.

    When every configuration has the same composition the individual E0s are not determined; the
    minimum-norm least-squares solution is returned (it reproduces the mean energy per composition).
    """
    configs = [c for c in configs if c.energy is not None]
    if not configs:
        raise DataError("fit_e0s: no configuration has an energy")
    zs = sorted(set(atomic_numbers or np.concatenate([c.atomic_numbers for c in configs]).tolist()))
    counts = np.array([[np.sum(c.atomic_numbers == z) for z in zs] for c in configs], dtype=np.float64)  # [C, Z]
    energies = np.array([c.energy for c in configs])  # [C]
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)  # [Z]
    return {int(z): float(e) for z, e in zip(zs, e0)}


def average_num_neighbors(graphs: list[dict]) -> float:
    """Mean number of neighbours per atom, Σ edges / Σ atoms (the normalisation of Eq. 8 in mace)."""
    n_edges = sum(int(g["edge_index"].shape[1]) for g in graphs)
    n_atoms = sum(int(g["positions"].shape[0]) for g in graphs)
    return n_edges / n_atoms


def energy_shift_force_scale(configs: list[Configuration], e0s: dict[int, float]) -> tuple[float, float]:
    """mace's scale-shift statistics: mean interaction energy per atom, (E - Σ_i E0_{z_i}) / N,
    and the RMS of all force components. Isolated atoms are skipped."""
    per_atom, forces = [], []
    for c in configs:
        if is_isolated_atom(c):
            continue
        if c.energy is not None:
            missing = set(c.atomic_numbers.tolist()) - set(e0s)
            if missing:
                raise DataError(f"{c.source}: no E0 for atomic numbers {sorted(missing)}")
            per_atom.append((c.energy - sum(e0s[int(z)] for z in c.atomic_numbers)) / len(c))
        if c.forces is not None:
            forces.append(c.forces.reshape(-1))
    if not per_atom or not forces:
        raise DataError("energy_shift_force_scale needs configurations with energies and forces")
    return float(np.mean(per_atom)), float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))


def random_split(items: list, fractions=(0.95, 0.05), seed: int = 0) -> list[list]:
    """Shuffle ``items`` with ``seed`` and cut them into parts of the given fractions (or integer sizes).

    Fractions summing to 1 use every item (the first part, usually "train", takes the rounding remainder).
    """
    n = len(items)
    sizes = [int(f) if isinstance(f, (int, np.integer)) and not isinstance(f, bool) else int(np.floor(f * n)) for f in fractions]
    if all(isinstance(f, float) for f in fractions) and abs(sum(fractions) - 1.0) < 1e-9:
        sizes[0] = n - sum(sizes[1:])
    if sum(sizes) > n or min(sizes) < 0:
        raise DataError(f"random_split: sizes {sizes} do not fit {n} items")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [[items[k] for k in order[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]


def stress_to_virials(stress: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """virials = -stress · volume (eV), for 3x3 stress in eV/Å³ and a cell with rows as lattice vectors."""
    return -np.asarray(stress) * abs(np.linalg.det(cell))


def virials_to_stress(virials: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """stress = -virials / volume (eV/Å³)."""
    volume = abs(np.linalg.det(cell))
    if volume < 1e-12:
        raise DataError("virials_to_stress: the cell has no volume")
    return -np.asarray(virials) / volume


# --------------------------------------------------------------------------------------------------
# Graphs and batches
# --------------------------------------------------------------------------------------------------


class GraphDataset(torch.utils.data.Dataset):
    """Configurations turned into graphs once (neighbour lists are not recomputed each epoch)."""

    def __init__(self, configs: list[Configuration], r_max: float, dtype: torch.dtype = torch.float64):
        self.configs = list(configs)
        self.r_max = r_max
        self.graphs = [c.to_graph(r_max, dtype) for c in self.configs]

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, k: int) -> dict:
        return self.graphs[k]


def make_loader(dataset, batch_size: int, shuffle: bool = False, seed: int = 0, **kwargs) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` over a :class:`GraphDataset` (or any list of graphs) that yields batch dicts.

    Shuffling is reproducible through ``seed``.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=batch_graphs, generator=generator, **kwargs
    )


def num_edges(graphs) -> np.ndarray:
    """Number of edges of each graph [S]: a list of graph dicts, or a dataset with an ``n_edges`` array
    (``minimace.shards.ShardDataset`` reads it from its index without loading any graph)."""
    if hasattr(graphs, "n_edges"):
        return np.asarray(graphs.n_edges, dtype=np.int64)
    return np.array([int(g["edge_index"].shape[1]) for g in graphs], dtype=np.int64)


def edge_budget_batches(order, n_edges, max_edges: int, world: int = 1) -> list[list[list[int]]]:
    """Cut ``order`` into consecutive batches of at most ``max_edges`` edges in total, split over ``world`` processes.

    Memory and time of a MACE step grow with the number of edges (every edge carries φ(r_ij) and its
    tensor product, Eq. 8), so a budget of edges bounds them where a fixed number of structures does not:
    ten water boxes cost a hundred times ten molecules. Structures are taken in the given order
    (the sampler's permutation); a batch is closed when the next structure would exceed the budget.
    Every index of ``order`` lands in exactly one batch, in one process.

    Parameters
    ----------
    order : sequence of int
        Indices of the structures, in the order of the epoch.
    n_edges : array_like of int
        Number of edges of every structure (indexed by the entries of ``order``), e.g. :func:`num_edges`.
    max_edges : int
        Budget of the whole (global) batch, like ``batch_size`` counts the global batch. A structure with more
        edges than the budget gets a batch of its own.
    world : int
        Number of processes: each batch holds at least ``world`` structures (one for each, which may exceed
        the budget when structures are larger than ``max_edges / world``), and is split between the processes
        so that their edges are balanced (each structure to the process with the fewest edges so far).
        A remainder of fewer than ``world`` structures at the end joins the previous batch.

    Returns
    -------
    list of batches, each a list of ``world`` lists of indices (the share of each process, in the given order)
    """
    order = [int(k) for k in order]
    n_edges = np.asarray(n_edges)
    if max_edges < 1:
        raise ValueError(f"option max_edges_per_batch must be >= 1, got {max_edges}")
    if len(order) < world:
        raise ValueError(f"{len(order)} structures cannot be shared by {world} processes")
    batches, current, edges = [], [], 0
    for k in order:
        if current and edges + n_edges[k] > max_edges and len(current) >= world:
            batches.append(current)
            current, edges = [], 0
        current.append(k)
        edges += int(n_edges[k])
    if len(current) < world and batches:
        batches[-1].extend(current)
    elif current:
        batches.append(current)
    return [_share(batch, n_edges, world) for batch in batches]


def _share(batch: list[int], n_edges: np.ndarray, world: int) -> list[list[int]]:
    """Split one batch between ``world`` processes, balancing their edges; none is left empty."""
    shares, load = [[] for _ in range(world)], [(0, 0)] * world  # load: (edges, structures)
    for k in batch:
        r = min(range(world), key=lambda q: load[q])
        shares[r].append(k)
        load[r] = (load[r][0] + int(n_edges[k]), load[r][1] + 1)
    return shares
