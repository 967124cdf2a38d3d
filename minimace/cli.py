"""Command line: ``minimace train``, ``minimace preprocess``, ``minimace evaluate``, ``minimace demo``,
``minimace download``, ``minimace verify``.

``minimace train`` takes options as flags or from a YAML file (``--config``; flags given on the command line
win). Defaults are the MACE paper's where it gives one (Batatia et al. 2022, arXiv:2206.07697: r_max 5 Å,
8 Bessel functions, p = 5, max_ell 3, correlation 3, 2 layers, AMSGrad lr 0.01, EMA 0.99, λ_E = 1, λ_F = 1000,
batch 5) and mace-torch's otherwise. Run ``minimace train --help`` for the list.

Examples
--------
::

    minimace train --train-file train.xyz --valid-fraction 0.05 --test-file test.xyz --E0s isolated \\
        --E0s-file isolated_atoms.xyz --hidden-irreps 64x0e+64x1o --max-epochs 200 --run-dir runs/ethanol
    minimace train --config configs/rmd17_aspirin.yaml --restart runs/aspirin/checkpoint.pt
    minimace preprocess --train-file big.xyz --valid-fraction 0.05 --E0s least-squares --out shards/big
    minimace train --train-shards shards/big --max-edges-per-batch 20000 --run-dir runs/big
    minimace evaluate runs/ethanol/best.pt test.xyz --output predictions.xyz
    minimace demo
    minimace download --list
    minimace download rmd17_aspirin botnet_ethanol
    minimace verify runs/ethanol/best.pt structure.xyz --json
    minimace verify --calculator ase.calculators.emt:EMT cu.xyz --checks rotation,forces_gradient
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import yaml

from .train import TrainConfig

# --------------------------------------------------------------------------------------------------
# Options (one table: flags, YAML keys and defaults come from it)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    name: str  # python name; the flag is --name-with-dashes, the YAML key either spelling
    type: Callable
    default: Any
    help: str
    choices: Optional[tuple] = None
    repeat: bool = False


def _int_list(s) -> list[int]:
    if isinstance(s, (list, tuple)):
        return [int(x) for x in s]
    return [int(x) for x in str(s).strip("[] ").replace(",", " ").split()]


def _optional(kind):
    def parse(s):
        return None if s is None or str(s).lower() in ("none", "null", "") else kind(s)
    parse.__name__ = kind.__name__
    return parse


DATA_OPTIONS = [
    Option("train_file", str, None, "training configurations (extxyz or any ASE format)"),
    Option("train_index", str, ":", "frames of the training file to use (ASE slice, e.g. ':1000')"),
    Option("valid_file", _optional(str), None, "validation configurations (default: a random part of train)"),
    Option("valid_fraction", float, 0.05, "fraction of the training file held out for validation (paper: 50/1000)"),
    Option("test_file", str, [], "test configurations (repeatable); errors reported at the end", repeat=True),
    Option("energy_key", str, "energy", "key of the energy in atoms.info"),
    Option("forces_key", str, "forces", "key of the forces in atoms.arrays"),
    Option("stress_key", str, "stress", "key of the stress in atoms.info"),
    Option("virials_key", str, "virials", "key of the virials in atoms.info"),
    Option("E0s", str, "isolated", "isolated-atom energies: 'isolated' (config_type=IsolatedAtom entries of the "
           "training file or --E0s-file), 'least-squares' (fit E ≈ Σ n_z E0_z), 'average' (one E0 for every "
           "element: the mean energy per atom), or a JSON dict like '{\"1\": -13.6, \"8\": -2041.0}'"),
    Option("E0s_file", _optional(str), None, "file with the isolated atoms for --E0s isolated"),
    Option("train_shards", _optional(str), None, "folder written by `minimace preprocess` (instead of --train-file): "
           "splits, graphs and statistics are read from it, one structure at a time"),
]
#: options fixed by ``minimace preprocess``: a run from shards takes them from DIR/meta.json
PREPROCESS_OPTIONS = ("train_file", "train_index", "valid_file", "valid_fraction", "energy_key", "forces_key",
                      "stress_key", "virials_key", "E0s", "E0s_file")
MODEL_OPTIONS = [
    Option("r_max", float, 5.0, "cutoff radius, Å"),
    Option("num_bessel", int, 8, "number of radial Bessel functions"),
    Option("num_polynomial_cutoff", int, 5, "order p of the polynomial cutoff envelope"),
    Option("max_ell", int, 3, "largest degree l of the spherical harmonics"),
    Option("correlation", int, 3, "body order ν of the product basis"),
    Option("num_interactions", int, 2, "number of MACE layers"),
    Option("hidden_irreps", str, "128x0e+128x1o", "irreps of the hidden features (same multiplicity for every l)"),
    Option("MLP_irreps", str, "16x0e", "hidden irreps of the last readout"),
    Option("radial_MLP", _int_list, [64, 64, 64], "hidden widths of the radial MLP, e.g. '[64,64,64]'"),
    Option("scaling", str, "rms_forces", "scale of the interaction energy: RMS of the training forces, or none",
           choices=("rms_forces", "none")),
]
_TRAIN_HELP = {
    "energy_weight": "λ_E, weight of the per-atom energy loss", "forces_weight": "λ_F, weight of the forces loss",
    "stress_weight": "weight of the stress loss", "virials_weight": "weight of the per-atom virials loss",
    "optimizer": "Adam or AMSGrad", "lr": "learning rate", "weight_decay": "L2 penalty",
    "scheduler": "ReduceLROnPlateau on the validation loss, or exponential decay",
    "lr_factor": "factor of ReduceLROnPlateau", "scheduler_patience": "patience of ReduceLROnPlateau (epochs)",
    "lr_gamma": "decay per epoch of the exponential scheduler", "clip_grad": "largest gradient norm (none: off)",
    "ema_decay": "decay of the exponential moving average of the weights (none: off)",
    "swa_start": "epoch of the second stage (higher energy weight, lower lr)",
    "swa_energy_weight": "λ_E of the second stage", "swa_forces_weight": "λ_F of the second stage",
    "swa_lr": "learning rate of the second stage", "batch_size": "configurations per (global) batch",
    "max_edges_per_batch": "form training batches by a budget of edges (global) instead of --batch-size "
                           "structures (none: off)",
    "valid_batch_size": "configurations per evaluation batch", "max_epochs": "number of epochs",
    "time_budget": "wall-clock budget in minutes", "patience": "stop after this many evaluations without progress",
    "eval_interval": "evaluate every this many epochs", "seed": "seed of every random generator",
    "device": "auto (CUDA if available), cpu, cuda, cuda:N", "dtype": "float64 or float32",
    "progress": "show progress bars",
}


def _train_options() -> list[Option]:
    out = []
    for f in fields(TrainConfig):
        kind = {"Optional[float]": _optional(float), "Optional[int]": _optional(int)}.get(str(f.type), None)
        kind = kind or {"float": float, "int": int, "str": str, "bool": _bool}[str(f.type)]
        choices = {"optimizer": ("amsgrad", "adam"), "scheduler": ("plateau", "exponential"),
                   "dtype": ("float64", "float32")}.get(f.name)
        out.append(Option(f.name, kind, f.default, _TRAIN_HELP.get(f.name, f.name), choices))
    return out


def _bool(s) -> bool:
    if isinstance(s, bool):
        return s
    if str(s).lower() in ("1", "true", "yes", "on"):
        return True
    if str(s).lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {s!r}")


RUN_OPTIONS = [
    Option("run_dir", str, "runs/minimace", "folder for checkpoints, logs, tables and figures"),
    Option("restart", _optional(str), None, "continue from this checkpoint.pt (model built from it)"),
]


def all_options() -> list[Option]:
    return DATA_OPTIONS + MODEL_OPTIONS + _train_options() + RUN_OPTIONS


# --------------------------------------------------------------------------------------------------
# Resolving options: defaults < YAML < flags, then checks
# --------------------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """An unknown, malformed or contradictory option; the message names it."""


def _add_options(parser: argparse.ArgumentParser, options: list[Option]) -> None:
    for o in options:
        flag = "--" + o.name.replace("_", "-")
        kw = dict(dest=o.name, default=argparse.SUPPRESS, help=f"{o.help} (default: {o.default})")
        if o.repeat:
            parser.add_argument(flag, action="append", **kw)
        else:
            parser.add_argument(flag, metavar=o.name.upper() if not o.choices else None, choices=o.choices,
                                **kw)


def resolve_options(cli: dict, config_file: Optional[str]) -> dict:
    """Merge defaults, the YAML file and the command-line flags; convert and check every value."""
    table = {o.name: o for o in all_options()}
    values = {name: o.default for name, o in table.items()}
    given = {}
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"--config {config_file}: cannot read it ({err})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config {config_file}: expected a mapping of option: value")
        lookup = {k.lower(): k for k in table}
        for key, value in loaded.items():
            name = lookup.get(str(key).replace("-", "_").lower())
            if name is None:
                raise ConfigError(f"unknown option {key!r} in {config_file}; known options: {sorted(table)}")
            given[name] = value
    given.update(cli)
    for name, raw in given.items():
        o = table[name]
        try:
            value = [o.type(v) for v in (raw if isinstance(raw, list) else [raw])] if o.repeat else o.type(raw)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"option {name}: cannot read {raw!r} ({err})") from None
        if o.choices and value not in o.choices:
            raise ConfigError(f"option {name}={value!r} is not one of {list(o.choices)}")
        values[name] = value
    for name in ("train_file", "valid_file", "E0s_file", "test_file", "restart", "train_shards"):
        values[name] = _expand(values[name])
    _check(values, given)
    if values["train_shards"]:
        _check_shards(values, given)
    return values


def _check_shards(v: dict, given: dict) -> None:
    """A run from shards takes its data options and r_max from the preprocessed folder."""
    from .data import DataError
    from .shards import read_meta

    fixed = [name for name in PREPROCESS_OPTIONS if name in given]
    if fixed:
        raise ConfigError(f"option train_shards: options {fixed} were fixed by `minimace preprocess` "
                          f"(see {v['train_shards']}/meta.json); leave them out or preprocess again")
    try:
        r_max = read_meta(v["train_shards"])["r_max"]
    except DataError as err:
        raise ConfigError(f"option train_shards: {err}") from None
    if "r_max" in given and v["r_max"] != r_max:
        raise ConfigError(f"option r_max={v['r_max']} differs from the r_max={r_max} of the graphs in "
                          f"{v['train_shards']}; preprocess again with --r-max {v['r_max']}")
    v["r_max"] = r_max


def _expand(path):
    """``$MINIMACE_DATA`` (or ``${MINIMACE_DATA}``) in a file option → the shared data folder; also ``~``."""
    if isinstance(path, list):
        return [_expand(p) for p in path]
    if not isinstance(path, str):
        return path
    if "MINIMACE_DATA" in path:
        from .datasets import data_dir

        path = path.replace("${MINIMACE_DATA}", str(data_dir())).replace("$MINIMACE_DATA", str(data_dir()))
    return os.path.expanduser(path)


def _check(v: dict, given: dict) -> None:
    from .so3 import Irreps

    if not v["train_file"] and not v["restart"] and not v["train_shards"]:
        raise ConfigError("option train_file is required (--train-file FILE or train_file: in the YAML file), "
                          "or train_shards (a folder written by `minimace preprocess`)")
    if "valid_file" in given and "valid_fraction" in given and v["valid_file"]:
        raise ConfigError("options valid_file and valid_fraction contradict each other: give one of them")
    if not 0 < v["valid_fraction"] < 1:
        raise ConfigError(f"option valid_fraction must lie in (0, 1), got {v['valid_fraction']}")
    try:
        hidden = Irreps(v["hidden_irreps"])
        mlp = Irreps(v["MLP_irreps"])
    except ValueError as err:
        raise ConfigError(f"option hidden_irreps/MLP_irreps: {err}") from None
    muls = {mi.mul for mi in hidden}
    if len(muls) != 1:
        raise ConfigError(f"option hidden_irreps={v['hidden_irreps']!r}: every irrep needs the same multiplicity "
                          f"(number of channels), got {sorted(muls)}")
    if len(hidden) == 0 or str(hidden[0].ir) != "0e":
        raise ConfigError(f"option hidden_irreps={v['hidden_irreps']!r} must start with even scalars (e.g. 64x0e)")
    if hidden.lmax > v["max_ell"]:
        raise ConfigError(f"option hidden_irreps={v['hidden_irreps']!r} has l={hidden.lmax} > max_ell={v['max_ell']}")
    if any(str(mi.ir) != "0e" for mi in mlp):
        raise ConfigError(f"option MLP_irreps={v['MLP_irreps']!r} must hold even scalars only (e.g. 16x0e)")
    for name, low in (("r_max", 0.0), ("num_bessel", 1), ("num_polynomial_cutoff", 1), ("correlation", 1),
                      ("num_interactions", 1)):
        if not v[name] >= low or (name == "r_max" and v[name] == 0):
            raise ConfigError(f"option {name} must be {'> 0' if name == 'r_max' else '>= 1'}, got {v[name]}")
    if v["max_ell"] < 0:
        raise ConfigError(f"option max_ell must be >= 0, got {v['max_ell']}")
    if not v["radial_MLP"] or min(v["radial_MLP"]) < 1:
        raise ConfigError(f"option radial_MLP needs positive widths, got {v['radial_MLP']}")
    if v["E0s"] not in ("isolated", "least-squares", "average"):
        _parse_e0s_dict(v["E0s"])
    if v["E0s_file"] and v["E0s"] != "isolated":
        raise ConfigError(f"options E0s_file and E0s={v['E0s']!r} contradict each other (E0s_file needs E0s isolated)")
    try:
        train_config(v)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _parse_e0s_dict(text) -> dict[int, float]:
    try:
        d = text if isinstance(text, dict) else json.loads(text)
        return {int(z): float(e) for z, e in d.items()}
    except (ValueError, TypeError, AttributeError):
        raise ConfigError(f"option E0s={text!r}: expected isolated, least-squares, average or a JSON dict "
                          "{Z: E0} such as '{\"1\": -13.6}'") from None


def train_config(v: dict) -> TrainConfig:
    return TrainConfig(**{f.name: v[f.name] for f in fields(TrainConfig)})


# --------------------------------------------------------------------------------------------------
# minimace train
# --------------------------------------------------------------------------------------------------


def _keys(v: dict):
    from .data import KeySpec

    return KeySpec(energy_key=v["energy_key"], forces_key=v["forces_key"], stress_key=v["stress_key"],
                   virials_key=v["virials_key"])


def _e0s(v: dict, configs: list, isolated: dict[int, float], log) -> dict[int, float]:
    from .data import fit_e0s, read_configurations, isolated_atom_energies

    zs = sorted({int(z) for c in configs for z in c.atomic_numbers})
    if v["E0s"] == "isolated":
        if v["E0s_file"]:
            isolated = isolated_atom_energies(read_configurations(v["E0s_file"], _keys(v), required=("energy",)))
        e0s = isolated
        source = v["E0s_file"] or f"the isolated atoms of {v['train_file']}"
    elif v["E0s"] == "least-squares":
        e0s, source = fit_e0s(configs, zs), "a least-squares fit E ≈ Σ n_z E0_z"
    elif v["E0s"] == "average":
        mean = float(np.mean([c.energy / len(c) for c in configs if c.energy is not None]))
        e0s, source = {z: mean for z in zs}, "the mean energy per atom"
    else:
        e0s, source = _parse_e0s_dict(v["E0s"]), "--E0s"
    missing = [z for z in zs if z not in e0s]
    if missing:
        raise ConfigError(f"option E0s={v['E0s']!r}: no E0 for atomic numbers {missing} in {source}; "
                          "give --E0s-file, or use --E0s least-squares")
    log(f"E0s from {source}: " + ", ".join(f"Z={z}: {e0s[z]:.6f} eV" for z in zs))
    return {z: e0s[z] for z in zs}


def read_splits(v: dict, log=print) -> dict:
    """Read the files, split (seeded) and find the E0s: ``train``, ``valid``, ``tests`` (configurations), ``e0s``."""
    from .data import random_split, read_configurations, split_isolated_atoms

    keys = _keys(v)
    isolated, configs = split_isolated_atoms(read_configurations(v["train_file"], keys, index=v["train_index"],
                                                                 required=()))
    if v["valid_file"]:
        train_c, valid_c = configs, split_isolated_atoms(read_configurations(v["valid_file"], keys, required=()))[1]
    else:
        train_c, valid_c = random_split(configs, (1 - v["valid_fraction"], v["valid_fraction"]), seed=v["seed"])
    if not train_c or not valid_c:
        raise ConfigError(f"{len(train_c)} training and {len(valid_c)} validation configurations: need both")
    tests = {Path(f).stem: split_isolated_atoms(read_configurations(f, keys, required=()))[1]
             for f in v["test_file"]}
    return {"train": train_c, "valid": valid_c, "tests": tests, "e0s": _e0s(v, train_c, isolated, log)}


def _test_sets(v: dict, dtype) -> dict:
    from .data import read_configurations, split_isolated_atoms

    return {Path(f).stem: [c.to_graph(v["r_max"], dtype) for c in
                           split_isolated_atoms(read_configurations(f, _keys(v), required=()))[1]]
            for f in v["test_file"]}


def prepare_data(v: dict, log=print) -> dict:
    """Read the files, split, compute E0s and statistics, and build the graphs
    (or open the shards of ``--train-shards``, which hold all of these)."""
    from .data import average_num_neighbors, energy_shift_force_scale

    dtype = getattr(torch, v["dtype"])
    if v["train_shards"]:
        from .shards import load_prepared

        out = load_prepared(v["train_shards"], dtype)
        out["tests"].update(_test_sets(v, dtype))
        shift, scale = out["shift"], out["force_rms"]
    else:
        splits = read_splits(v, log)
        graphs = lambda cs: [c.to_graph(v["r_max"], dtype) for c in cs]  # noqa: E731
        out = {"train": graphs(splits["train"]), "valid": graphs(splits["valid"]),
               "tests": {k: graphs(c) for k, c in splits["tests"].items()}, "e0s": splits["e0s"],
               "train_names": [c.source for c in splits["train"]]}
        out["avg_num_neighbors"] = average_num_neighbors(out["train"])
        shift, scale = energy_shift_force_scale(splits["train"], splits["e0s"])
    out["shift"], out["scale"] = shift, (scale if v["scaling"] == "rms_forces" else 1.0)
    log(f"{len(out['train'])} training, {len(out['valid'])} validation configurations"
        + "".join(f", {len(c)} in {k}" for k, c in out["tests"].items())
        + f"; mean neighbours {out['avg_num_neighbors']:.2f}, energy shift {shift:.4f} eV/atom, "
        f"force scale {out['scale']:.4f} eV/Å" + (f" (from {v['train_shards']})" if v["train_shards"] else ""))
    return out


def run_preprocess(v: dict, out: str, shard_size: int = 10_000, log=print) -> dict:
    """``minimace preprocess``: the splits of ``minimace train`` (same options, same seed) written as shards."""
    from .shards import write_prepared

    splits = read_splits(v, log)
    tests = {f"test_{name}": configs for name, configs in splits["tests"].items()}
    info = {k: v[k] for k in PREPROCESS_OPTIONS + ("test_file", "seed")}
    meta = write_prepared(out, {"train": splits["train"], "valid": splits["valid"], **tests}, v["r_max"],
                          splits["e0s"], shard_size, info=info, log=log)
    log(f"{out}: " + ", ".join(f"{name} {s['n_structures']} structures ({len(s['files'])} shards)"
                               for name, s in meta["splits"].items())
        + f"; mean neighbours {meta['avg_num_neighbors']:.2f}, r_max {meta['r_max']} Å")
    return meta


def build_model(v: dict, data: dict):
    from .model import MACE

    zs = sorted(data["e0s"])
    return MACE(r_max=v["r_max"], num_bessel=v["num_bessel"], num_polynomial_cutoff=v["num_polynomial_cutoff"],
                max_ell=v["max_ell"], correlation=v["correlation"], num_interactions=v["num_interactions"],
                hidden_irreps=v["hidden_irreps"], MLP_irreps=v["MLP_irreps"], radial_MLP=v["radial_MLP"],
                avg_num_neighbors=data["avg_num_neighbors"], atomic_numbers=zs,
                atomic_energies=[data["e0s"][z] for z in zs], atomic_inter_scale=data["scale"],
                atomic_inter_shift=data["shift"])


def _setup_distributed(device: str = "auto") -> bool:
    """Initialise torch.distributed when launched by torchrun (also with one process): NCCL for GPUs, else gloo."""
    if "WORLD_SIZE" not in os.environ or "MASTER_ADDR" not in os.environ:
        return False
    import torch.distributed as dist

    gpu = torch.cuda.is_available() and device != "cpu"
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if gpu else "gloo")
    return True


def run_train(v: dict, log=print) -> dict:
    """``minimace train`` with resolved options ``v``."""
    from .checkpoint import load_checkpoint
    from .model import MACE
    from .train import seed_everything, train

    distributed = _setup_distributed(v["device"])
    rank = int(os.environ.get("RANK", 0))
    say = log if rank == 0 else (lambda *a: None)
    try:
        if distributed:
            import torch.distributed as dist

            say(f"distributed: {dist.get_world_size()} process(es), backend {dist.get_backend()}")
        seed_everything(v["seed"])
        data = prepare_data(v, say)
        if v["restart"]:
            model = MACE(**load_checkpoint(v["restart"])["model_config"])
        else:
            model = build_model(v, data)
        run_dir = Path(v["run_dir"])
        if rank == 0:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(yaml.safe_dump(v, sort_keys=False, allow_unicode=True))
        n_params = sum(p.numel() for p in model.parameters())
        say(f"model: {n_params} parameters, hidden {model.config['hidden_irreps']}; run folder {run_dir}")
        return train(model, data["train"], data["valid"], train_config(v), run_dir=run_dir,
                     test_sets=data["tests"], restart=v["restart"], log=say, train_names=data["train_names"])
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


# --------------------------------------------------------------------------------------------------
# minimace evaluate
# --------------------------------------------------------------------------------------------------


def run_evaluate(args, log=print) -> dict:
    """Errors of a model on a file (when it has labels) and its predictions written to extxyz."""
    import ase.io

    from .checkpoint import load_model
    from .data import KeySpec, read_configurations, split_isolated_atoms
    from .train import error_table, metrics_from_predictions, predict, resolve_device, resolve_dtype

    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    model = load_model(args.model).to(device=device, dtype=dtype)
    keys = KeySpec(energy_key=args.energy_key, forces_key=args.forces_key, stress_key=args.stress_key,
                   virials_key=args.virials_key)
    configs = split_isolated_atoms(read_configurations(args.file, keys, required=()))[1]
    graphs = [c.to_graph(model.config["r_max"], dtype) for c in configs]
    p = predict(model, graphs, args.batch_size, device, dtype)
    metrics = {Path(args.file).stem: metrics_from_predictions(p)}
    log(error_table(metrics))
    output = Path(args.output or Path(args.file).with_suffix("").name + "_minimace.xyz")
    energies = p["pred_energy"].double().numpy()
    forces = np.split(p["pred_forces"].double().numpy(), np.cumsum(p["n_atoms"].numpy())[:-1])
    stress = p["pred_stress"].double().numpy() if "pred_stress" in p else None  # [B, 3, 3], labelled cells only
    frames = []
    for k, (c, e, f) in enumerate(zip(configs, energies, forces)):
        atoms = c.to_atoms()
        atoms.info["minimace_energy"] = float(e)
        atoms.arrays["minimace_forces"] = f
        if stress is not None and c.pbc.all():
            atoms.info["minimace_stress"] = stress[k].reshape(9)
        frames.append(atoms)
    ase.io.write(output, frames, format="extxyz")
    log(f"predictions written to {output} (info minimace_energy[, minimace_stress], arrays minimace_forces)")
    return {"metrics": metrics, "output": output}


# --------------------------------------------------------------------------------------------------
# minimace demo
# --------------------------------------------------------------------------------------------------

DEMO = dict(hidden_irreps="16x0e+16x1o", max_ell=2, correlation=2, r_max=4.5, num_bessel=8, radial_MLP=[32, 32],
            MLP_irreps="16x0e", batch_size=5, lr=0.01, forces_weight=100.0, energy_weight=100.0,
            scheduler_patience=5, max_epochs=200, valid_fraction=0.1, E0s="isolated", dtype="float64")


def run_demo(args, log=print) -> bool:
    """Train a small MACE on the bundled GFN2-xTB data, then check it and print its errors."""
    from .datasets import bundled_dir

    folder = bundled_dir()
    v = resolve_options({**DEMO, "train_file": str(folder / "train.xyz"), "test_file": [str(folder / "test.xyz")],
                         "E0s_file": str(folder / "isolated_atoms.xyz"), "time_budget": args.time_budget,
                         "run_dir": args.run_dir, "device": args.device, "seed": args.seed,
                         "progress": args.progress}, None)
    log(f"minimace demo: a MACE with hidden irreps {v['hidden_irreps']} trained for at most "
        f"{v['time_budget']} min on the bundled GFN2-xTB set (ethanol, methanol, water)")
    start = time.monotonic()
    result = run_train(v, log)
    log(f"training took {time.monotonic() - start:.0f} s")
    checks = demo_checks(Path(v["run_dir"]) / "best.pt", result)
    for name, ok, detail in checks:
        log(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    log(f"error table: {Path(v['run_dir']) / 'errors.txt'}; figures: parity.png, learning_curves.png")
    return all(ok for _, ok, _ in checks)


def demo_checks(model_path: Path, result: dict) -> list[tuple[str, bool, str]]:
    """Symmetry, force/energy consistency, reloading and learning checks of a trained model."""
    import ase
    from ase.build import molecule
    from ase.calculators.fd import calculate_numerical_forces

    from .calculator import MiniMACECalculator

    checks = []
    calc = MiniMACECalculator(str(model_path), dtype="float64")
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    atoms.calc = calc
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    R = _rotation(seed=3)
    rotated = ase.Atoms(atoms.numbers, atoms.positions @ R.T)
    rotated.calc = calc
    err_e = abs(rotated.get_potential_energy() - e)
    err_f = np.abs(rotated.get_forces() - f @ R.T).max()
    checks.append(("rotation: E(Rx) = E(x), F(Rx) = R F(x)", err_e < 1e-9 and err_f < 1e-9,
                   f"|ΔE| = {err_e:.1e} eV, max |ΔF| = {err_f:.1e} eV/Å"))
    mirrored = ase.Atoms(atoms.numbers, -atoms.positions)
    mirrored.calc = calc
    err_p = abs(mirrored.get_potential_energy() - e)
    checks.append(("inversion: E(-x) = E(x)", err_p < 1e-9, f"|ΔE| = {err_p:.1e} eV"))
    numeric = calculate_numerical_forces(atoms, eps=1e-4)
    err_fd = np.abs(numeric - f).max()
    checks.append(("forces = -dE/dx (central differences, h = 1e-4 Å)", err_fd < 1e-5,
                   f"max |F - F_fd| = {err_fd:.1e} eV/Å"))
    p = result["predictions"].get("test") or result["predictions"]["valid"]
    f_rms = p["ref_forces"].pow(2).mean().sqrt().item() * 1000
    f_mae = result["metrics"]["test" if "test" in result["metrics"] else "valid"]["F_mae"]
    checks.append(("learned: test force MAE below the force RMS (zero-force baseline)", f_mae < 0.5 * f_rms,
                   f"F MAE {f_mae:.1f} meV/Å vs RMS {f_rms:.1f} meV/Å"))
    return checks


def _rotation(seed: int) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=seed).as_matrix()


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minimace", description="minimace: train and use MACE potentials")
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train a MACE model")
    p_train.add_argument("--config", help="YAML file of options (flags given here override it)")
    for title, options in (("data", DATA_OPTIONS), ("model", MODEL_OPTIONS), ("training", _train_options()),
                           ("run", RUN_OPTIONS)):
        _add_options(p_train.add_argument_group(title), options)
    p_pre = sub.add_parser("preprocess", help="split a training file and write its graphs, labels and statistics "
                           "as HDF5 shards, for `minimace train --train-shards`")
    p_pre.add_argument("--config", help="YAML file of options (those of minimace train; the data ones are used)")
    p_pre.add_argument("--out", required=True, help="folder for the shards and meta.json")
    p_pre.add_argument("--shard-size", type=int, default=10_000, help="structures per shard file (default: 10000)")
    _add_options(p_pre.add_argument_group("data"), [o for o in DATA_OPTIONS if o.name != "train_shards"]
                 + [o for o in MODEL_OPTIONS if o.name == "r_max"]
                 + [o for o in _train_options() if o.name == "seed"])
    p_eval = sub.add_parser("evaluate", help="errors and predictions of a model on a file")
    p_eval.add_argument("model", help="best.pt or checkpoint.pt written by minimace train")
    p_eval.add_argument("file", help="configurations (extxyz or any ASE format)")
    p_eval.add_argument("--output", help="extxyz file for the predictions (default: FILE_minimace.xyz)")
    for key in ("energy", "forces", "stress", "virials"):
        p_eval.add_argument(f"--{key}-key", default=key, help=f"key of the reference {key}")
    p_eval.add_argument("--batch-size", type=int, default=10)
    p_eval.add_argument("--device", default="auto")
    p_eval.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p_demo = sub.add_parser("demo", help="train a small model on the bundled data (CPU, ~2-3 minutes) and check it")
    p_demo.add_argument("--run-dir", default="runs/demo")
    p_demo.add_argument("--time-budget", type=float, default=2.0, help="minutes of training")
    p_demo.add_argument("--device", default="auto")
    p_demo.add_argument("--seed", type=int, default=1)
    p_demo.add_argument("--progress", type=_bool, default=False)
    p_get = sub.add_parser("download", help="fetch public real data sets (pinned, SHA-256 checked) for the lessons")
    p_get.add_argument("names", nargs="*", help="data sets (see --list), or 'all'")
    p_get.add_argument("--list", action="store_true", help="show the data sets, their sizes and sources")
    p_get.add_argument("--dir", help="data folder to fill (default: $MINIMACE_DATA, else the user cache)")
    p_get.add_argument("--base-url", help="a mirror laid out like the data folder (default: $MINIMACE_DOWNLOAD_URL, "
                       "else the pinned GitHub URLs)")
    p_verify = sub.add_parser("verify", help="equivariance and physics checks of any potential on a structure")
    p_verify.add_argument("paths", nargs="+", metavar="PATH",
                          help="a minimace model/checkpoint or a mace-torch model file, then a structure file (any "
                               "ASE format); with --calculator, only the structure")
    p_verify.add_argument("--calculator", metavar="MODULE:FACTORY", help="FACTORY() of MODULE (or file.py) returns "
                          "an ASE calculator, a model, or a function (positions, numbers, cell, pbc) -> E[, F, S]")
    p_verify.add_argument("--checks", help="comma-separated subset of rotation, reflection, translation, permutation, "
                          "forces_gradient, stress_strain, cutoff_smoothness, extensivity, nve_conservation "
                          "(default: all that apply)")
    p_verify.add_argument("--dtype", choices=("float64", "float32"), help="precision of the potential (tolerances)")
    p_verify.add_argument("--cutoff", type=float, help="cutoff radius in Å for cutoff_smoothness")
    p_verify.add_argument("--index", type=int, default=0, help="frame of the structure file")
    p_verify.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p_verify.add_argument("--plot", metavar="PNG", help="also draw the errors against the tolerances")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the ``minimace`` command. Returns the exit status."""
    from .data import DataError
    from .checkpoint import CheckpointError
    from .train import TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            cli = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
            run_train(resolve_options(cli, args.config))
        elif args.command == "preprocess":
            cli = {k: v for k, v in vars(args).items() if k not in ("command", "config", "out", "shard_size")}
            v = resolve_options(cli, args.config)
            if v["train_shards"]:
                raise ConfigError("option train_shards: preprocess reads --train-file, it does not take shards")
            run_preprocess(v, args.out, args.shard_size)
        elif args.command == "evaluate":
            run_evaluate(args)
        elif args.command == "demo":
            return 0 if run_demo(args) else 1
        elif args.command == "download":
            from .datasets import download_main

            return download_main(args.names, list_only=args.list, root=args.dir, base_url=args.base_url)
        elif args.command == "verify":
            from .testing.verify import run_cli

            return run_cli(args)
    except (ConfigError, DataError, CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"minimace {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minimace {args.command}: interrupted. A training run continues from its last complete epoch with "
              "--restart RUN_DIR/checkpoint.pt", file=sys.stderr)
        return 130
    except TrainingDiverged as err:
        print(f"minimace {args.command}: training stopped: {err}. The last complete checkpoint is kept; "
              "lower --lr or check the data, then --restart from it.", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
