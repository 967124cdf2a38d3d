"""Checkpoints: plain data on disk, written atomically, read back safely.

A checkpoint is a ``dict`` that holds only tensors and plain Python types (``dict``, ``list``, ``tuple``,
``str``, ``int``, ``float``, ``bool``, ``None``), so that ``torch.load(path, weights_only=True)`` reads it
without unpickling any object. It is tagged with a format name and version and the minimace version that
wrote it; :func:`load_checkpoint` refuses anything else with a :class:`CheckpointError` that says why.

Writes are atomic: the bytes go to a temporary file in the same folder, are flushed and ``fsync``-ed, and the
temporary file then replaces the target with ``os.replace`` (atomic on POSIX). A process killed during a write
leaves the previous checkpoint intact (and at most a stray ``*.tmp`` file).
"""

from __future__ import annotations

import io
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "minimace-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A file that is not a readable minimace checkpoint of a supported format."""


def _version() -> str:
    from . import __version__

    return __version__


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (tensors and plain types only) to ``path`` atomically.

    The format tag, format version and minimace version are added to a copy of ``state``.

    Parameters
    ----------
    state : dict
        Checkpoint content, e.g. ``model_config``, ``model_state``, ``optimizer_state``, ``epoch``.
    path : path-like
        Target file. Its folder is created if needed.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "minimace_version": _version(), **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    _check_plain(buffer)  # refuse to write what weights_only could not read back
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def _check_plain(buffer: io.BytesIO) -> None:
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
    except pickle.UnpicklingError as err:
        raise TypeError(f"checkpoint state must hold only tensors and plain Python types: {err}") from None
    buffer.seek(0)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (with ``weights_only=True``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CheckpointError
        If the file is truncated or corrupted, is not a minimace checkpoint, or has another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = [line.strip() for line in str(err).splitlines() if "Unsupported global" in line]
        raise CheckpointError(
            f"{path} is not a minimace checkpoint: it holds Python objects, which are never unpickled"
            + (f" ({found[0][:160]})" if found else "")
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for damaged files
        with open(path, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
        if is_zip:
            raise CheckpointError(f"{path} is truncated or corrupted and cannot be read "
                                  f"({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
        raise CheckpointError(f"{path} is not a minimace checkpoint (not a file written by torch.save)") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a minimace checkpoint (no '{FORMAT}' format tag)")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {state.get('format_version')!r} "
            f"(written by minimace {state.get('minimace_version')}); this minimace ({_version()}) "
            f"reads version {FORMAT_VERSION}"
        )
    return state


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's random generators as tensors and plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu", averaged: bool = True):
    """A ``minimace.MACE`` from a model file (``best.pt``) or a training checkpoint (``checkpoint.pt``).

    Parameters
    ----------
    path : path-like
        File written by ``minimace.train``.
    map_location : str or torch.device
        Where the tensors are loaded.
    averaged : bool
        For a training checkpoint, use the exponential moving average of the weights (what is evaluated
        during training) rather than the raw weights.

    Returns
    -------
    minimace.MACE
        In evaluation mode, with the dtype of the stored weights.
    """
    from .model import MACE

    state = load_checkpoint(path, map_location=map_location)
    if "model_config" not in state or "model_state" not in state:
        raise CheckpointError(f"{path} holds no model (keys {sorted(state)})")
    model = MACE(**state["model_config"])
    weights = dict(state["model_state"])
    if averaged and state.get("ema_state"):
        weights.update(state["ema_state"]["shadow"])
    dtype = next(v.dtype for v in weights.values() if v.is_floating_point())
    model.to(dtype=dtype)
    model.load_state_dict(weights)
    return model.eval()
