"""Training: weighted energy/forces loss, AMSGrad, learning-rate schedule, EMA, checkpoints, metrics.

The loss is the one of the MACE paper (Batatia et al. 2022, arXiv:2206.07697, Appendix "Training details")
and of mace-torch's ``WeightedEnergyForcesLoss``, over a batch of B configurations with N_b atoms each::

    L = λ_E / B Σ_b w_E,b ((Ê_b − E_b) / N_b)²                  energy per atom
      + λ_F / (3N) Σ_{i,α} w_F,b(i) (F̂_iα − F_iα)²              forces, every Cartesian component
      + λ_σ / (9B) Σ_b w_σ,b ‖σ̂_b − σ_b‖²                        stress (periodic cells, optional)
      + λ_V / (9B) Σ_b w_V,b ‖(V̂_b − V_b) / N_b‖²                virials per atom (optional)

The paper's rMD17 recipe: λ_E = 1, λ_F = 1000 (with the per-atom energy above), batch 5, AMSGrad with
lr = 0.01, ReduceLROnPlateau (factor 0.8, patience 50), exponential moving average of the weights with
decay 0.99, gradients clipped at norm 10. A second stage (``swa_start``, mace-torch's "stage two") switches to
a larger energy weight and a smaller learning rate for the last epochs.

Every sum above is divided by counts over the *global* batch, so that B configurations split over several
processes (``torch.distributed``, one process per GPU) give the same gradient as one process (up to the
order of floating-point additions).

Checkpoints (``minimace.checkpoint``) hold only tensors and plain types, are written atomically, and hold
everything needed to continue a run exactly as if it had not been interrupted.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data import edge_budget_batches, num_edges
from .graph import batch_graphs, to_device

__all__ = [
    "TrainConfig",
    "ExponentialMovingAverage",
    "TrainingDiverged",
    "loss_terms",
    "weighted_loss",
    "evaluate",
    "predict",
    "loss_from_predictions",
    "metrics_from_predictions",
    "error_table",
    "train",
    "epoch_batches",
    "seed_everything",
    "resolve_device",
    "resolve_dtype",
]

LABELS = ("energy", "forces", "stress", "virials")


@dataclass
class TrainConfig:
    """Hyperparameters of a training run (defaults: the MACE paper's rMD17 recipe where it gives one).

    Attributes
    ----------
    energy_weight, forces_weight, stress_weight, virials_weight : float
        λ_E, λ_F, λ_σ, λ_V of the loss (energy per atom; paper rMD17: λ_E = 1, λ_F = 1000).
    optimizer : {"amsgrad", "adam"}
        Adam with or without the AMSGrad correction (paper: AMSGrad).
    lr, weight_decay : float
        Learning rate (paper: 0.01) and L2 penalty (mace-torch default 5e-7).
    scheduler : {"plateau", "exponential"}
        ReduceLROnPlateau on the validation loss (factor ``lr_factor``, ``scheduler_patience`` epochs) or
        an exponential decay by ``lr_gamma`` per epoch.
    clip_grad : float or None
        Maximal gradient norm (mace-torch default 10).
    ema_decay : float or None
        Decay of the exponential moving average of the weights (paper: 0.99); None disables it.
    swa_start : int or None
        Epoch from which the second stage uses ``swa_energy_weight``, ``swa_forces_weight`` and ``swa_lr``.
    batch_size, valid_batch_size : int
        Configurations per *global* batch (paper: 5).
    max_edges_per_batch : int or None
        Form training batches by a budget of edges (global, over all processes) instead of ``batch_size``
        structures (``minimace.data.edge_budget_batches``); the loss is the same mean over each batch.
    max_epochs : int
        Number of epochs.
    time_budget : float or None
        Wall-clock budget in minutes; the run stops after the batch during which it is spent.
    patience : int or None
        Early stopping after this many evaluations without a better validation loss.
    eval_interval : int
        Evaluate on the validation set every this many epochs.
    seed : int
        Seed of every random generator (same seed + config → same numbers on the same machine).
    device : str
        "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", ...
    dtype : {"float64", "float32"}
        Floating-point precision of the model and the data.
    progress : bool
        Show tqdm progress bars.
    """

    energy_weight: float = 1.0
    forces_weight: float = 1000.0
    stress_weight: float = 0.0
    virials_weight: float = 0.0
    optimizer: str = "amsgrad"
    lr: float = 0.01
    weight_decay: float = 5e-7
    scheduler: str = "plateau"
    lr_factor: float = 0.8
    scheduler_patience: int = 50
    lr_gamma: float = 0.9993
    clip_grad: Optional[float] = 10.0
    ema_decay: Optional[float] = 0.99
    swa_start: Optional[int] = None
    swa_energy_weight: float = 1000.0
    swa_forces_weight: float = 100.0
    swa_lr: float = 1e-3
    batch_size: int = 5
    valid_batch_size: int = 10
    max_edges_per_batch: Optional[int] = None
    max_epochs: int = 100
    time_budget: Optional[float] = None
    patience: Optional[int] = None
    eval_interval: int = 1
    seed: int = 123
    device: str = "auto"
    dtype: str = "float64"
    progress: bool = True

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the option for impossible or contradictory values."""
        choices = {"optimizer": ("amsgrad", "adam"), "scheduler": ("plateau", "exponential"),
                   "dtype": ("float64", "float32")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"option {name}={getattr(self, name)!r} is not one of {list(allowed)}")
        for name in ("batch_size", "valid_batch_size", "max_epochs", "eval_interval"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"option {name} must be >= 1, got {getattr(self, name)}")
        for name in ("energy_weight", "forces_weight", "stress_weight", "virials_weight", "lr", "weight_decay"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"option {name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.lr == 0:
            raise ValueError("option lr must be > 0")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"option ema_decay must be in (0, 1) or None, got {self.ema_decay}")
        if self.swa_start is not None and self.swa_start < 0:
            raise ValueError(f"option swa_start must be an epoch >= 0, got {self.swa_start}")
        if self.max_edges_per_batch is not None and self.max_edges_per_batch < 1:
            raise ValueError(f"option max_edges_per_batch must be >= 1 (or None), got {self.max_edges_per_batch}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ValueError(f"option time_budget must be > 0 minutes, got {self.time_budget}")
        if self.energy_weight + self.forces_weight + self.stress_weight + self.virials_weight == 0:
            raise ValueError("options energy_weight, forces_weight, stress_weight, virials_weight are all 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch, the batch and its configurations."""


# --------------------------------------------------------------------------------------------------
# Set-up helpers
# --------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` → CUDA if available, else CPU; under torchrun, "auto"/"cuda" is the local rank's GPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"option device={str(device)!r}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))  # one GPU per process under torchrun
    return device


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float64": torch.float64, "float32": torch.float32}
    if dtype not in table:
        raise ValueError(f"option dtype={dtype!r} is not one of {list(table)}")
    return table[dtype]


def _world() -> tuple[int, int]:
    """(rank, world size) of the current process group; (0, 1) without torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# --------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------


def loss_terms(pred: dict, batch: dict) -> dict[str, torch.Tensor]:
    """Weighted sums of squared errors and their counts for each label present in ``batch``.

    Returns ``{label: sum}`` and ``{label + "_count": count}``; ``loss = Σ λ · sum / count``.
    Energies and virials are compared per atom.
    """
    n_atoms = (batch["ptr"][1:] - batch["ptr"][:-1]).to(pred["energy"].dtype)  # [B]
    out = {}
    if "energy" in batch:
        err = (pred["energy"] - batch["energy"]) / n_atoms  # [B]
        out["energy"] = (batch["energy_weight"] * err**2).sum()
        out["energy_count"] = torch.tensor(float(len(err)))
    if "forces" in batch:
        w = batch["forces_weight"][batch["batch"]]  # [N]
        out["forces"] = (w[:, None] * (pred["forces"] - batch["forces"]) ** 2).sum()
        out["forces_count"] = torch.tensor(3.0 * len(w))
    for label, scale in (("stress", None), ("virials", n_atoms)):
        if label in batch and label in pred:
            err = pred[label] - batch[label]  # [B, 3, 3]
            if scale is not None:
                err = err / scale[:, None, None]
            out[label] = (batch[f"{label}_weight"][:, None, None] * err**2).sum()
            out[f"{label}_count"] = torch.tensor(9.0 * len(err))
    return out


def weighted_loss(terms: dict, weights: dict[str, float], counts: Optional[dict] = None) -> torch.Tensor:
    """``Σ_label λ_label · sum_label / count_label``; ``counts`` overrides the local counts (global batch)."""
    counts = counts or {k: v for k, v in terms.items() if k.endswith("_count")}
    loss = 0.0
    for label in LABELS:
        if label in terms and weights.get(label, 0.0) > 0:
            loss = loss + weights[label] * terms[label] / counts[f"{label}_count"].to(terms[label])
    if not isinstance(loss, torch.Tensor):
        raise ValueError(f"no label with a positive loss weight in the batch (weights {weights})")
    return loss


# --------------------------------------------------------------------------------------------------
# Exponential moving average of the weights
# --------------------------------------------------------------------------------------------------


class ExponentialMovingAverage:
    """θ̄ ← d θ̄ + (1 − d) θ after every optimiser step, with d = min(decay, (1 + n) / (10 + n)).

    The warm-up ``(1 + n) / (10 + n)`` (n = number of updates so far, as in ``torch_ema`` used by mace-torch)
    keeps the average from being dominated by the random initial weights.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].mul_(d).add_(p.detach(), alpha=1 - d)

    @torch.no_grad()
    def swap(self, model: torch.nn.Module) -> None:
        """Exchange the model's weights with the averaged ones (call twice to undo)."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                tmp = p.detach().clone()
                p.copy_(self.shadow[name])
                self.shadow[name].copy_(tmp)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.num_updates = state["num_updates"]
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)


class _Averaged:
    """Context manager: the model holds the EMA weights inside the ``with`` block."""

    def __init__(self, model, ema):
        self.model, self.ema = model, ema

    def __enter__(self):
        if self.ema is not None:
            self.ema.swap(self.model)
        return self.model

    def __exit__(self, *exc):
        if self.ema is not None:
            self.ema.swap(self.model)
        return False


# --------------------------------------------------------------------------------------------------
# Batches and evaluation
# --------------------------------------------------------------------------------------------------


def iterate_batches(graphs, batch_size: int, indices: Optional[Iterable[int]] = None):
    """Yield ``(indices, batch)`` of ``batch_size`` graphs in the order of ``indices`` (default: all).

    ``graphs`` is a list of graph dicts or any dataset indexed by integers (``minimace.shards.ShardDataset``).
    """
    indices = list(range(len(graphs)) if indices is None else indices)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        yield chunk, batch_graphs([graphs[i] for i in chunk])


def _needs_stress(batch: dict) -> bool:
    return ("stress" in batch or "virials" in batch) and bool(batch["pbc"].any())


@torch.no_grad()
def _detach(d: dict) -> dict:
    return {k: v.detach() for k, v in d.items() if isinstance(v, torch.Tensor)}


def _e0_energy(model, batch: dict) -> Optional[torch.Tensor]:
    """Σ_i E0_{z_i} of each graph [B] from the model's ``config`` (None if the model has no E0s)."""
    config = getattr(model, "config", {})
    if "atomic_energies" not in config or "atomic_numbers" not in config:
        return None
    table = torch.zeros(max(config["atomic_numbers"]) + 1, dtype=torch.float64)
    table[torch.tensor(config["atomic_numbers"])] = torch.tensor(config["atomic_energies"], dtype=torch.float64)
    z = batch["atomic_numbers"].cpu().clamp(max=len(table) - 1)
    n_graphs = len(batch["ptr"]) - 1
    return torch.zeros(n_graphs, dtype=torch.float64).index_add(0, batch["batch"].cpu(), table[z])  # [B]


def predict(model, graphs: list[dict], batch_size: int = 10, device="cpu", dtype=torch.float64) -> dict:
    """Predicted and reference energies / forces (/ stress) of ``graphs``, concatenated, on the CPU.

    Also ``e0_energy``, Σ_i E0_{z_i} of each configuration (the part of E that is not learned), when the model
    has E0s, and the label weights; keys ``n_atoms``, ``pred_*``, ``ref_*``, ``*_weight``.
    """
    model.eval()
    out: dict[str, list] = {}
    for _, batch in iterate_batches(graphs, batch_size):
        batch = to_device(batch, device, dtype)
        pred = _detach(model(batch, compute_forces=True, compute_stress=_needs_stress(batch), training=False))
        n_atoms = batch["ptr"][1:] - batch["ptr"][:-1]
        rows = {"n_atoms": n_atoms, "pred_energy": pred["energy"], "pred_forces": pred["forces"]}
        e0 = _e0_energy(model, batch)
        if e0 is not None:
            rows["e0_energy"] = e0.to(pred["energy"].dtype)
        for label in LABELS:
            if label in batch:
                rows[f"ref_{label}"] = batch[label]
                rows[f"{label}_weight"] = batch[f"{label}_weight"]
                if label in pred:
                    rows[f"pred_{label}"] = pred[label]
        for k, v in rows.items():
            out.setdefault(k, []).append(v.detach().cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def metrics_from_predictions(p: dict) -> dict[str, float]:
    """MAE / RMSE of energies (meV, total and per atom), forces (meV/Å, components), stress (meV/Å³)."""
    m: dict[str, float] = {"n_configs": int(len(p["n_atoms"]))}
    if "ref_energy" in p:
        keep = p["energy_weight"] > 0
        err = (p["pred_energy"] - p["ref_energy"])[keep] * 1000  # [B] meV
        per_atom = err / p["n_atoms"][keep]
        m.update(E_mae=err.abs().mean().item(), E_rmse=err.pow(2).mean().sqrt().item(),
                 E_mae_per_atom=per_atom.abs().mean().item(), E_rmse_per_atom=per_atom.pow(2).mean().sqrt().item())
    if "ref_forces" in p:
        keep = torch.repeat_interleave(p["forces_weight"] > 0, p["n_atoms"])  # [N]
        err = (p["pred_forces"] - p["ref_forces"])[keep] * 1000  # [N, 3] meV/Å
        m.update(F_mae=err.abs().mean().item(), F_rmse=err.pow(2).mean().sqrt().item())
    if "ref_stress" in p and "pred_stress" in p:
        keep = p["stress_weight"] > 0
        err = (p["pred_stress"] - p["ref_stress"])[keep] * 1000
        m.update(S_mae=err.abs().mean().item(), S_rmse=err.pow(2).mean().sqrt().item())
    return m


def loss_from_predictions(p: dict, weights: dict[str, float]) -> float:
    """The loss of :func:`weighted_loss` over a whole split, from the output of :func:`predict`."""
    n_atoms = p["n_atoms"].to(p["pred_energy"].dtype)  # [B]
    sums, counts = {}, {}
    if "ref_energy" in p:
        sums["energy"] = (p["energy_weight"] * ((p["pred_energy"] - p["ref_energy"]) / n_atoms) ** 2).sum()
        counts["energy_count"] = torch.tensor(float(len(n_atoms)))
    if "ref_forces" in p:
        w = torch.repeat_interleave(p["forces_weight"], p["n_atoms"])  # [N]
        sums["forces"] = (w[:, None] * (p["pred_forces"] - p["ref_forces"]) ** 2).sum()
        counts["forces_count"] = torch.tensor(3.0 * len(w))
    for label, scale in (("stress", None), ("virials", n_atoms)):
        if f"pred_{label}" in p and f"ref_{label}" in p:
            err = p[f"pred_{label}"] - p[f"ref_{label}"]  # [B, 3, 3]
            err = err / scale[:, None, None] if scale is not None else err
            sums[label] = (p[f"{label}_weight"][:, None, None] * err**2).sum()
            counts[f"{label}_count"] = torch.tensor(9.0 * len(err))
    return weighted_loss({**sums, **counts}, weights).item()


def evaluate(model, graphs: list[dict], weights: dict[str, float], batch_size: int = 10, device="cpu",
             dtype=torch.float64) -> tuple[float, dict]:
    """Loss (with ``weights``) and metrics of ``model`` on ``graphs`` (all of them, in order)."""
    p = predict(model, graphs, batch_size, device, dtype)
    return loss_from_predictions(p, weights), metrics_from_predictions(p)


ERROR_COLUMNS = [("E_mae", "E MAE [meV]"), ("E_rmse", "E RMSE [meV]"),
                 ("E_mae_per_atom", "E MAE [meV/atom]"), ("E_rmse_per_atom", "E RMSE [meV/atom]"),
                 ("F_mae", "F MAE [meV/Å]"), ("F_rmse", "F RMSE [meV/Å]"),
                 ("S_mae", "σ MAE [meV/Å³]"), ("S_rmse", "σ RMSE [meV/Å³]")]


def error_table(metrics: dict[str, dict]) -> str:
    """A plain-text table: one row per split, one column per available metric."""
    cols = [(k, title) for k, title in ERROR_COLUMNS if any(k in m for m in metrics.values())]
    header = ["split", "configs"] + [title for _, title in cols]
    rows = [[name, str(m.get("n_configs", ""))] + [f"{m[k]:.3f}" if k in m else "-" for k, _ in cols]
            for name, m in metrics.items()]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    lines = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------------


def _loss_weights(config: TrainConfig, epoch: int) -> dict[str, float]:
    """λ of each label; from ``swa_start`` on, the second stage's energy and forces weights."""
    stage_two = config.swa_start is not None and epoch >= config.swa_start
    return {"energy": config.swa_energy_weight if stage_two else config.energy_weight,
            "forces": config.swa_forces_weight if stage_two else config.forces_weight,
            "stress": config.stress_weight, "virials": config.virials_weight}


def _make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                            amsgrad=config.optimizer == "amsgrad")


def _make_scheduler(optimizer, config: TrainConfig):
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config.lr_factor,
                                                          patience=config.scheduler_patience)
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_gamma)


def _global_counts(batch: dict, device, world: int) -> dict[str, torch.Tensor]:
    """The counts of the whole (global) batch, summed over processes when distributed: B configurations,
    3N force components, 9B stress and virial components. They count every configuration of the batch, as
    :func:`loss_terms` does (unlabelled ones have weight 0), also where a process's share has no such label."""
    n_graphs, n_atoms = len(batch["ptr"]) - 1, len(batch["batch"])
    counts = torch.tensor([n_graphs, 3 * n_atoms, 9 * n_graphs, 9 * n_graphs], dtype=torch.float64,
                          device=device)  # [4], in the order of LABELS
    if world > 1:
        dist.all_reduce(counts)
    return {f"{label}_count": counts[k].clamp(min=1.0) for k, label in enumerate(LABELS)}


def epoch_batches(config: TrainConfig, n_edges: np.ndarray, epoch: int, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """This process's training batches of one epoch, as lists of indices into the training set.

    The order is a permutation seeded by ``config.seed + epoch`` (``DistributedSampler``), the same for every
    process. With ``batch_size``, each process takes every ``world``-th index (the sampler pads the epoch to
    a multiple of ``world`` by repeating a few) in batches of ``batch_size / world``. With
    ``max_edges_per_batch``, the permutation is cut into global batches of at most that many edges and each
    is shared between the processes (``minimace.data.edge_budget_batches``): every structure once per epoch.
    """
    n_train = len(n_edges)
    if config.max_edges_per_batch is None:
        sampler = torch.utils.data.DistributedSampler(range(n_train), num_replicas=world, rank=rank, shuffle=True,
                                                      seed=config.seed, drop_last=False)
        sampler.set_epoch(epoch)
        indices, per_rank = list(sampler), config.batch_size // world
        return [indices[start:start + per_rank] for start in range(0, len(indices), per_rank)]
    sampler = torch.utils.data.DistributedSampler(range(n_train), num_replicas=1, rank=0, shuffle=True,
                                                  seed=config.seed, drop_last=False)
    sampler.set_epoch(epoch)
    return [shares[rank] for shares in edge_budget_batches(list(sampler), n_edges, config.max_edges_per_batch, world)]


def _train_epoch(net, model, graphs, batches, config, weights, optimizer, ema, epoch, device, dtype, world,
                 deadline, names=None):
    """One pass over this process's batches (lists of indices into ``graphs``).
    Returns (mean loss, steps, stopped by time)."""
    from tqdm.auto import tqdm

    model.train()
    bar = tqdm(total=len(batches), desc=f"epoch {epoch}", leave=False, disable=not config.progress or _world()[0] > 0)
    total, n_seen = 0.0, 0
    for b, chunk in enumerate(batches):
        batch = to_device(batch_graphs([graphs[i] for i in chunk]), device, dtype)
        pred = net(batch, compute_forces=True, compute_stress=_needs_stress(batch), training=True)
        terms = loss_terms(pred, batch)
        loss = weighted_loss(terms, weights, _global_counts(batch, device, world))  # this rank's share
        value = loss.detach().clone()
        if world > 1:
            dist.all_reduce(value)
        if not torch.isfinite(value):
            raise TrainingDiverged(f"loss became {value.item()} at epoch {epoch}, batch {b} "
                                   f"({_which(chunk, names)} on rank {_world()[0]})")
        optimizer.zero_grad(set_to_none=True)
        (loss * world).backward()  # DDP averages gradients over the world: undo it
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad or float("inf"))
        if not torch.isfinite(norm):
            raise TrainingDiverged(f"gradient norm became {norm.item()} at epoch {epoch}, batch {b} "
                                   f"({_which(chunk, names)} on rank {_world()[0]})")
        optimizer.step()
        if ema is not None:
            ema.update(model)
        total, n_seen = total + value.item(), n_seen + 1
        bar.update(1)
        bar.set_postfix(loss=f"{value.item():.4g}")
        if deadline is not None and _time_is_up(deadline, device, world):
            bar.close()
            return total / n_seen, n_seen, True
    bar.close()
    return total / max(n_seen, 1), n_seen, False


def _which(chunk: list[int], names: Optional[list[str]]) -> str:
    """The configurations of a batch: indices in the training set, and where they come from when known."""
    text = f"training configurations {chunk}"
    return text + (": " + "; ".join(names[i] for i in chunk) if names else "")


def _time_is_up(deadline: float, device, world: int) -> bool:
    """All processes agree (rank 0's clock decides)."""
    flag = torch.tensor([float(time.monotonic() > deadline)], device=device)
    if world > 1:
        dist.broadcast(flag, src=0)
    return bool(flag.item())


@dataclass
class _RunState:
    """What the loop carries from epoch to epoch (saved in every checkpoint)."""

    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_evals: int = 0
    history: list = field(default_factory=list)


def _model_state(model, ema) -> dict:
    """The model's state dict with the averaged weights in place of the raw ones."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if ema is not None:
        state.update({k: v.detach().clone() for k, v in ema.shadow.items()})
    return state


def _save_training(path, model, ema, optimizer, scheduler, run: _RunState, config: TrainConfig):
    save_checkpoint({
        "kind": "training",
        "model_config": model.config,
        "model_state": model.state_dict(),
        "ema_state": ema.state_dict() if ema is not None else None,
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict(),
        "train_config": config.to_dict(),
        "run_state": dataclasses.asdict(run),
        "rng": rng_state(),
    }, path)


def _save_model(path, model, ema, extra: dict):
    save_checkpoint({"kind": "model", "model_config": model.config, "model_state": _model_state(model, ema),
                     **extra}, path)


def _write_log(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


def _restore(path, model, ema, optimizer, config: TrainConfig) -> tuple[_RunState, dict]:
    state = load_checkpoint(path, map_location="cpu")
    if state.get("kind") != "training":
        raise ValueError(f"--restart {path}: a model file, not a training checkpoint (use checkpoint.pt)")
    if state["model_config"] != model.config:
        raise ValueError(f"--restart {path}: the checkpoint's model configuration differs from this run's")
    model.load_state_dict(state["model_state"])
    if ema is not None and state["ema_state"] is not None:
        ema.load_state_dict(state["ema_state"])
    optimizer.load_state_dict(state["optimizer_state"])
    set_rng_state(state["rng"])
    return _RunState(**state["run_state"]), state["scheduler_state"]


def train(model, train_graphs: list[dict], valid_graphs: list[dict], config: TrainConfig,
          run_dir: Optional[str | os.PathLike] = None, test_sets: Optional[dict[str, list[dict]]] = None,
          restart: Optional[str | os.PathLike] = None, log=print,
          train_names: Optional[list[str]] = None) -> dict[str, Any]:
    """Train ``model`` (a ``minimace.MACE``) on graphs from ``minimace.graph.atoms_to_graph``.

    Every ``eval_interval`` epochs the EMA weights are evaluated on ``valid_graphs``; the learning-rate
    scheduler steps on that validation loss; ``run_dir/checkpoint.pt`` (the whole training state) and, when
    the validation loss improved, ``run_dir/best.pt`` (the averaged weights) are written. At the end the model
    holds the best weights; the error table of every split is printed and saved with a CSV log, parity plots
    and learning curves.

    Under ``torchrun`` (``torch.distributed`` initialised) every process takes its share of each global batch
    of ``config.batch_size`` configurations, or of ``config.max_edges_per_batch`` edges (:func:`epoch_batches`),
    and the model is wrapped in ``DistributedDataParallel`` (also for a single process); only rank 0 writes files.

    Parameters
    ----------
    model : torch.nn.Module
        ``model(batch, compute_forces=True, compute_stress=..., training=...)`` → dict; has ``.config``.
    train_graphs, valid_graphs : list of dict, or datasets of them
        Labelled graphs (one structure each): lists, or datasets read from disk on demand
        (``minimace.shards.ShardDataset``), whose memory does not grow with their size.
    config : TrainConfig
    run_dir : path-like, optional
        Folder for checkpoints, log, tables and figures (nothing is written without it).
    test_sets : dict, optional
        Extra named splits evaluated at the end.
    restart : path-like, optional
        A ``checkpoint.pt`` to continue from: the run continues exactly as the uninterrupted one would.
    log : callable
        Where messages go (``print`` by default).
    train_names : list of str, optional
        Where each training graph comes from (e.g. "train.xyz, frame 12"), quoted when the loss diverges.

    Returns
    -------
    dict
        ``history`` (one row per epoch), ``metrics`` ({split: {metric: value}}), ``best_epoch``,
        ``stopped`` ("max_epochs", "time_budget" or "patience").

    Raises
    ------
    TrainingDiverged
        The loss or the gradient became NaN/inf (the last complete checkpoint is kept).
    """
    rank, world = _world()
    if config.batch_size % world and config.max_edges_per_batch is None:
        raise ValueError(f"option batch_size={config.batch_size} must be a multiple of the number of "
                         f"processes ({world})")
    device, dtype = resolve_device(config.device), resolve_dtype(config.dtype)
    model.to(device=device, dtype=dtype)
    run_dir = Path(run_dir) if run_dir is not None else None
    write = run_dir is not None and rank == 0
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
    optimizer = _make_optimizer(model, config)
    ema = ExponentialMovingAverage(model, config.ema_decay) if config.ema_decay else None
    run, scheduler_state = _RunState(), None
    if restart is not None:
        run, scheduler_state = _restore(restart, model, ema, optimizer, config)
        log(f"restarting from {restart} at epoch {run.epoch}")
    scheduler = _make_scheduler(optimizer, config)
    if scheduler_state is not None:
        scheduler.load_state_dict(scheduler_state)
    net = model
    if dist.is_available() and dist.is_initialized():
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    n_edges = num_edges(train_graphs)  # [S], for edge-budget batches (read from the index of shards)
    deadline = time.monotonic() + 60 * config.time_budget if config.time_budget else None
    stopped, start = "max_epochs", time.monotonic()
    for epoch in range(run.epoch, config.max_epochs):
        if config.swa_start is not None and epoch == config.swa_start:
            for group in optimizer.param_groups:
                group["lr"] = config.swa_lr
            scheduler = _make_scheduler(optimizer, config)
            run.best_loss, run.bad_evals = math.inf, 0  # the loss changed: compare within stage two only
            log(f"epoch {epoch}: stage two (λ_E={config.swa_energy_weight}, λ_F={config.swa_forces_weight}, "
                f"lr={config.swa_lr})")
        weights = _loss_weights(config, epoch)
        batches = epoch_batches(config, n_edges, epoch, rank, world)
        train_loss, steps, out_of_time = _train_epoch(net, model, train_graphs, batches, config, weights,
                                                      optimizer, ema, epoch, device, dtype, world, deadline,
                                                      train_names)
        row = {"epoch": epoch, "steps": steps, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss}
        if (epoch + 1) % config.eval_interval == 0 or epoch + 1 == config.max_epochs or out_of_time:
            with _Averaged(model, ema):
                valid_loss, m = evaluate(model, valid_graphs, weights, config.valid_batch_size, device, dtype)
            row.update(valid_loss=valid_loss, **{k: v for k, v in m.items() if k != "n_configs"})
            if config.scheduler == "plateau":
                scheduler.step(valid_loss)
            if valid_loss < run.best_loss:
                run.best_loss, run.best_epoch, run.bad_evals = valid_loss, epoch, 0
                if write:
                    _save_model(run_dir / "best.pt", model, ema, {"epoch": epoch, "valid_loss": valid_loss})
            else:
                run.bad_evals += 1
        if config.scheduler == "exponential":
            scheduler.step()
        row["time_s"] = round(time.monotonic() - start, 3)
        run.history.append(row)
        log(_epoch_line(row))
        if out_of_time:  # mid-epoch: the resumable checkpoint stays at the last complete epoch
            stopped = "time_budget"
            break
        run.epoch = epoch + 1
        if write:
            _save_training(run_dir / "checkpoint.pt", model, ema, optimizer, scheduler, run, config)
            _write_log(run_dir / "log.csv", run.history)
        if config.patience is not None and run.bad_evals >= config.patience:
            stopped = "patience"
            break
    return _finish(model, ema, run, config, train_graphs, valid_graphs, test_sets or {}, run_dir, write,
                   stopped, device, dtype, log)


def _epoch_line(row: dict) -> str:
    parts = [f"epoch {row['epoch']:4d}", f"lr {row['lr']:.2e}", f"train loss {row['train_loss']:.4g}"]
    if "valid_loss" in row:
        parts.append(f"valid loss {row['valid_loss']:.4g}")
    if "E_mae_per_atom" in row:
        parts.append(f"E MAE {row['E_mae_per_atom']:.2f} meV/atom")
    if "F_mae" in row:
        parts.append(f"F MAE {row['F_mae']:.2f} meV/Å")
    return " | ".join(parts)


def _finish(model, ema, run, config, train_graphs, valid_graphs, test_sets, run_dir, write, stopped, device,
            dtype, log) -> dict[str, Any]:
    """Load the best weights, evaluate every split, write the table, the log and the figures."""
    if write and (run_dir / "best.pt").is_file():
        model.load_state_dict(load_checkpoint(run_dir / "best.pt")["model_state"])
    elif ema is not None:  # no file to read the best weights from: keep the last averaged ones
        ema.swap(model)
    splits = {"train": train_graphs, "valid": valid_graphs, **test_sets}
    predictions = {name: predict(model, graphs, config.valid_batch_size, device, dtype)
                   for name, graphs in splits.items() if len(graphs)}
    metrics = {name: metrics_from_predictions(p) for name, p in predictions.items()}
    table = error_table(metrics)
    log(f"stopped: {stopped}; best epoch {run.best_epoch} (validation loss {run.best_loss:.6g})\n{table}")
    if write:
        _write_log(run_dir / "log.csv", run.history)
        (run_dir / "errors.txt").write_text(table + "\n")
        _write_log(run_dir / "errors.csv", [{"split": name, **m} for name, m in metrics.items()])
        from .plots import learning_curves, parity_plots

        parity_plots({k: v for k, v in predictions.items() if k != "train"} or predictions, run_dir / "parity.png")
        learning_curves(run.history, run_dir / "learning_curves.png")
    return {"history": run.history, "metrics": metrics, "best_epoch": run.best_epoch, "stopped": stopped,
            "table": table, "predictions": predictions}
