"""Preprocessed data on disk: graphs, labels and statistics in HDF5 shards, read one structure at a time.

``minimace preprocess`` reads an extxyz file once, splits it as ``minimace train`` would (same seed), builds
every neighbour list (``minimace.graph.atoms_to_graph``) and writes, for each split, files of
``shard_size`` structures; ``minimace train --train-shards DIR`` then trains from them. Training holds only
the index of the shards (two offsets per structure) and the current batch in memory, so its memory does not
grow with the number of structures, and its numbers are those of training from the extxyz file: the graphs
are the same tensors, in the same order.

The folder::

    DIR/meta.json           format version, r_max, E0s, average number of neighbours, energy shift,
                            force RMS, where the data came from, and the files of each split
    DIR/train_00000.h5 ...  shards of the training split (then valid_*, test_<name>_*)

One shard holds S structures with N atoms and E edges in all, as flat arrays with offsets (CSR layout):

==================  ==========  =======  =====================================================
dataset             shape       dtype    meaning
==================  ==========  =======  =====================================================
``atom_ptr``        [S+1]       int64    structure s owns atoms ``atom_ptr[s]:atom_ptr[s+1]``
``edge_ptr``        [S+1]       int64    structure s owns edges ``edge_ptr[s]:edge_ptr[s+1]``
``atomic_numbers``  [N]         uint8    Z
``positions``       [N, 3]      float64  Å
``edge_index``      [E, 2]      int32    (centre i, neighbour j), atom indices within the structure
``unit_shifts``     [E, 3]      int32    periodic image of the neighbour (shift = unit_shifts @ cell)
``cell``, ``pbc``   [S, 3, 3]   float64  lattice vectors as rows; periodicity [S, 3] bool
``energy`` ...      [S] / [N,3] float64  labels; ``has_energy`` [S] bool, ``energy_weight`` [S]
``source``          [S]         str      where the structure came from ("train.xyz, frame 12 (line 145)")
==================  ==========  =======  =====================================================

Why HDF5 (through h5py): it is the format of mace-torch's own preprocessed data, a single self-describing
file per shard that any language reads, with slicing straight from disk (no unpickling, unlike LMDB records
of pickled objects), and h5py is a mature library with wheels everywhere. Plain contiguous datasets without
compression keep the read of one structure to a few small slices.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from .graph import DataError

__all__ = ["FORMAT_VERSION", "write_split", "write_prepared", "read_meta", "ShardDataset", "load_prepared"]

FORMAT_VERSION = 1
LABELS = {"energy": "per_structure", "forces": "per_atom", "stress": "per_structure", "virials": "per_structure"}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("minimace.shards needs h5py: pip install h5py") from None
    return h5py


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _write_shard(path: Path, graphs: list[dict], sources: list[str], r_max: float) -> None:
    """One HDF5 file from graphs of ``atoms_to_graph`` (B = 1 each, float64), written atomically."""
    h5py = _h5py()
    n_atoms = np.array([len(g["positions"]) for g in graphs])  # [S]
    n_edges = np.array([g["edge_index"].shape[1] for g in graphs])  # [S]
    cat = lambda key: torch.cat([g[key] for g in graphs]).numpy()  # noqa: E731
    edge_index = torch.cat([g["edge_index"].T for g in graphs]).numpy()  # [E, 2]
    unit_shifts = cat("unit_shifts")  # [E, 3], integral floats
    if len(edge_index) and max(edge_index.max(), np.abs(unit_shifts).max()) >= 2**31:
        raise DataError(f"{sources[0]}...: indices or image offsets too large for the shard format")
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs.update(format_version=FORMAT_VERSION, r_max=r_max, n_structures=len(graphs))
        f["atom_ptr"] = np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64)
        f["edge_ptr"] = np.concatenate([[0], np.cumsum(n_edges)]).astype(np.int64)
        f["atomic_numbers"] = cat("atomic_numbers").astype(np.uint8)
        f["positions"] = cat("positions")
        f["edge_index"] = edge_index.astype(np.int32)
        f["unit_shifts"] = unit_shifts.astype(np.int32)
        f["cell"] = cat("cell")
        f["pbc"] = cat("pbc")
        f["source"] = np.array(sources, dtype=h5py.string_dtype())
        for label, kind in LABELS.items():
            has = np.array([label in g for g in graphs])
            if not has.any():
                continue
            shape = (3,) if label == "forces" else (() if label == "energy" else (3, 3))
            values = [g[label].numpy() if label in g else np.zeros((n if kind == "per_atom" else 1,) + shape)
                      for g, n in zip(graphs, n_atoms)]
            f[label] = np.concatenate(values)  # [S] / [N, 3] / [S, 3, 3]
            f[f"has_{label}"] = has
            f[f"{label}_weight"] = np.array([float(g[f"{label}_weight"]) if label in g else 0.0 for g in graphs])
    os.replace(tmp, path)


def write_split(configs, out_dir, name: str, r_max: float, shard_size: int = 10_000, progress=None) -> dict:
    """Write the graphs of ``configs`` (``minimace.data.Configuration``) as ``out_dir/NAME_00000.h5`` ...

    Graphs are built one shard at a time (``Configuration.to_graph``, float64), so memory holds one shard's
    graphs, never all of them. Returns ``{"files": [...], "n_structures", "n_atoms", "n_edges"}``.
    """
    if shard_size < 1:
        raise ValueError(f"option shard_size must be >= 1, got {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, n_atoms, n_edges = [], 0, 0
    for start in range(0, len(configs), shard_size):
        part = configs[start:start + shard_size]
        graphs = [c.to_graph(r_max, torch.float64) for c in part]
        path = out_dir / f"{name}_{len(files):05d}.h5"
        _write_shard(path, graphs, [c.source for c in part], r_max)
        files.append(path.name)
        n_atoms += sum(len(g["positions"]) for g in graphs)
        n_edges += sum(g["edge_index"].shape[1] for g in graphs)
        if progress is not None:
            progress(f"{name}: {start + len(part)}/{len(configs)} structures written")
    return {"files": files, "n_structures": len(configs), "n_atoms": n_atoms, "n_edges": n_edges}


def write_prepared(out_dir, splits: dict, r_max: float, e0s: dict[int, float], shard_size: int = 10_000,
                   info: dict | None = None, log=print) -> dict:
    """Write every split (``{"train": configs, "valid": configs, "test_x": configs}``) and ``meta.json``.

    The statistics are those ``minimace train`` computes from the training split: the average number of
    neighbours Σ edges / Σ atoms (the normalisation of Eq. 8), the mean interaction energy per atom and
    the RMS of the force components (mace's scale and shift), next to the E0s. Returns the metadata.
    """
    from .data import energy_shift_force_scale

    if "train" not in splits or "valid" not in splits:
        raise ValueError("write_prepared needs a train and a valid split")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {name: write_split(configs, out_dir, name, r_max, shard_size, log) for name, configs in splits.items()}
    shift, force_rms = energy_shift_force_scale(splits["train"], e0s)
    meta = {
        "format_version": FORMAT_VERSION,
        "r_max": float(r_max),
        "e0s": {str(z): float(e) for z, e in sorted(e0s.items())},
        "avg_num_neighbors": written["train"]["n_edges"] / written["train"]["n_atoms"],
        "energy_shift": shift,
        "force_rms": force_rms,
        "splits": written,
        "info": info or {},
    }
    tmp = out_dir / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(tmp, out_dir / "meta.json")
    return meta


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def read_meta(folder) -> dict:
    """``folder/meta.json``, checked (a clear error for a folder that ``minimace preprocess`` did not write)."""
    path = Path(folder) / "meta.json"
    if not path.is_file():
        raise DataError(f"{folder}: no meta.json — not a folder written by `minimace preprocess`")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: shard format {meta.get('format_version')}, this minimace reads {FORMAT_VERSION}; "
                        "run `minimace preprocess` again")
    for name, split in meta["splits"].items():
        for file in split["files"]:
            if not (Path(folder) / file).is_file():
                raise DataError(f"{folder}: split {name!r} lists {file}, which is missing")
    return meta


class ShardDataset(torch.utils.data.Dataset):
    """The structures of one split, read from its shards on demand: ``dataset[k]`` is the graph dict of
    ``atoms_to_graph`` (B = 1) in ``dtype``, equal to the one built from the extxyz file.

    In memory: two offsets and the edge count per structure (``n_atoms``, ``n_edges``, used by edge-budget
    batching) and open file handles (opened lazily, again in each process after a fork).
    """

    def __init__(self, folder, split: str = "train", dtype: torch.dtype = torch.float64):
        h5py = _h5py()
        self.folder, self.split, self.dtype = Path(folder), split, dtype
        meta = read_meta(folder)
        if split not in meta["splits"]:
            raise DataError(f"{folder}: no split {split!r} (has {sorted(meta['splits'])})")
        self.paths = [self.folder / name for name in meta["splits"][split]["files"]]
        self.atom_ptr, self.edge_ptr = [], []
        for path in self.paths:
            with h5py.File(path, "r") as f:
                self.atom_ptr.append(f["atom_ptr"][:])
                self.edge_ptr.append(f["edge_ptr"][:])
        sizes = [len(p) - 1 for p in self.atom_ptr]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # [n_shards+1]
        self.n_atoms = np.concatenate([np.diff(p) for p in self.atom_ptr]) if sizes else np.zeros(0, np.int64)
        self.n_edges = np.concatenate([np.diff(p) for p in self.edge_ptr]) if sizes else np.zeros(0, np.int64)
        self._files, self._pid = {}, None
        self.sources = _Sources(self)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _file(self, shard: int) -> dict:
        """The datasets of one shard by name (opened once per process: HDF5 handles must not cross a fork)."""
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        if shard not in self._files:
            f = _h5py().File(self.paths[shard], "r")
            self._files[shard] = {name: f[name] for name in f}
        return self._files[shard]

    def _locate(self, k: int) -> tuple[int, int]:
        if not -len(self) <= k < len(self):
            raise IndexError(f"structure {k} of a split of {len(self)}")
        k = k % len(self)
        shard = int(np.searchsorted(self.starts, k, side="right")) - 1
        return shard, k - int(self.starts[shard])

    def __getitem__(self, k: int) -> dict:
        shard, s = self._locate(int(k))
        f = self._file(shard)
        a0, a1 = self.atom_ptr[shard][s:s + 2]
        e0, e1 = self.edge_ptr[shard][s:s + 2]
        dtype = self.dtype
        unit_shifts = torch.from_numpy(f["unit_shifts"][e0:e1].astype(np.int64)).to(dtype)  # [E, 3]
        cell = torch.from_numpy(f["cell"][s]).to(dtype)  # [3, 3]
        n = int(a1 - a0)
        graph = {  # the keys, dtypes and arithmetic of minimace.graph.atoms_to_graph
            "positions": torch.from_numpy(f["positions"][a0:a1]).to(dtype),  # [N, 3]
            "atomic_numbers": torch.from_numpy(f["atomic_numbers"][a0:a1].astype(np.int64)),  # [N]
            "edge_index": torch.from_numpy(f["edge_index"][e0:e1].astype(np.int64).T.copy()),  # [2, E]
            "shifts": unit_shifts @ cell,  # [E, 3]
            "unit_shifts": unit_shifts,  # [E, 3]
            "cell": cell[None],  # [1, 3, 3]
            "pbc": torch.from_numpy(f["pbc"][s])[None],  # [1, 3]
            "batch": torch.zeros(n, dtype=torch.long),  # [N]
            "ptr": torch.tensor([0, n], dtype=torch.long),  # [2]
        }
        for label, kind in LABELS.items():
            if label in f and f[f"has_{label}"][s]:
                value = f[label][a0:a1] if kind == "per_atom" else f[label][s:s + 1]
                graph[label] = torch.from_numpy(value).to(dtype)
                graph[f"{label}_weight"] = torch.from_numpy(f[f"{label}_weight"][s:s + 1]).to(dtype)  # [1]
        return graph

    def source(self, k: int) -> str:
        """Where structure ``k`` came from (file, frame, line)."""
        shard, s = self._locate(int(k))
        return self._file(shard)["source"][s].decode()

    def __getstate__(self):  # picklable (DataLoader workers): without the open files
        return {**self.__dict__, "_files": {}, "_pid": None}


class _Sources:
    """``dataset.sources[k]``: the source of structure k, read when asked (training error messages)."""

    def __init__(self, dataset: ShardDataset):
        self.dataset = dataset

    def __getitem__(self, k: int) -> str:
        return self.dataset.source(k)

    def __len__(self) -> int:
        return len(self.dataset)


def load_prepared(folder, dtype: torch.dtype = torch.float64) -> dict:
    """The splits and statistics of a preprocessed folder, in the form ``minimace.cli.prepare_data`` returns:
    ``train``, ``valid`` (:class:`ShardDataset`), ``tests`` (the other splits), ``e0s``, ``avg_num_neighbors``,
    ``shift``, ``force_rms``, ``r_max`` and ``train_names``."""
    meta = read_meta(folder)
    splits = {name: ShardDataset(folder, name, dtype) for name in meta["splits"]}
    return {
        "train": splits["train"], "valid": splits["valid"],
        "tests": {name.removeprefix("test_"): d for name, d in splits.items() if name not in ("train", "valid")},
        "e0s": {int(z): e for z, e in meta["e0s"].items()},
        "avg_num_neighbors": meta["avg_num_neighbors"], "shift": meta["energy_shift"],
        "force_rms": meta["force_rms"], "r_max": meta["r_max"], "train_names": splits["train"].sources,
        "meta": meta,
    }
