"""Figures of a training run: parity plots (energies, forces) and learning curves, written as PNG.

Uses matplotlib's non-interactive Agg canvas directly, so it works without a display and never changes the
global backend of a notebook session.
"""

from __future__ import annotations

import os
from typing import Sequence

from matplotlib.figure import Figure


def _save(fig: Figure, path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(os.fspath(path), dpi=120, bbox_inches="tight")


def parity_figure(predictions: dict[str, dict]) -> Figure:
    """Predicted vs reference interaction energy per atom and force components, one colour per split.

    The energy panel shows ``(E − Σ_i E0_{z_i}) / N`` (meV/atom) when the predictions carry ``e0_energy``: the
    isolated-atom part is not learned and would only separate compositions. Otherwise it shows E / N relative
    to its mean.

    Parameters
    ----------
    predictions : dict
        ``{split: minimace.train.predict(...)}`` (keys ``pred_energy``, ``ref_energy``, ``n_atoms``,
        ``pred_forces``, ``ref_forces``, optionally ``e0_energy``).
    """
    fig = Figure(figsize=(9, 4.2))
    ax_e, ax_f = fig.subplots(1, 2)
    with_e = [p for p in predictions.values() if "ref_energy" in p]
    has_e0 = all("e0_energy" in p for p in with_e)
    offset = 0.0 if has_e0 else float(sum((p["ref_energy"] / p["n_atoms"]).sum() for p in with_e)
                                      / max(sum(len(p["n_atoms"]) for p in with_e), 1))
    for name, p in predictions.items():
        if "ref_energy" in p:
            e0 = p["e0_energy"] if has_e0 else 0.0
            ref, pred = (1000 * ((p[k] - e0) / p["n_atoms"] - offset) for k in ("ref_energy", "pred_energy"))
            ax_e.scatter(ref, pred, s=6, alpha=0.6, label=name)
        if "ref_forces" in p:
            ax_f.scatter(p["ref_forces"].flatten(), p["pred_forces"].flatten(), s=2, alpha=0.4, label=name)
    e_title = "(E − Σ E0) / N" if has_e0 else f"E / N − ({offset:.4f} eV)"
    for ax, title, unit in ((ax_e, e_title, "meV/atom"), (ax_f, "force components", "eV/Å")):
        if ax.collections:
            lo = min(min(ax.get_xlim()), min(ax.get_ylim()))
            hi = max(max(ax.get_xlim()), max(ax.get_ylim()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set(xlim=(lo, hi), ylim=(lo, hi))
            ax.legend(markerscale=3)
        ax.set(title=title, xlabel=f"reference [{unit}]", ylabel=f"predicted [{unit}]")
    fig.tight_layout()
    return fig


def parity_plots(predictions: dict[str, dict], path) -> None:
    """Write :func:`parity_figure` to ``path`` (PNG)."""
    _save(parity_figure(predictions), path)


def learning_curves_figure(history: Sequence[dict]) -> Figure:
    """Training/validation loss and validation errors (energy per atom, forces) per epoch, log scale."""
    fig = Figure(figsize=(9, 4.2))
    ax_l, ax_m = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    ax_l.semilogy(epochs, [row["train_loss"] for row in history], label="train")
    valid = [row for row in history if "valid_loss" in row]
    ax_l.semilogy([r["epoch"] for r in valid], [r["valid_loss"] for r in valid], "o-", ms=3, label="valid (EMA)")
    ax_l.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_l.legend()
    for key, label in (("E_mae_per_atom", "E MAE [meV/atom]"), ("F_mae", "F MAE [meV/Å]")):
        rows = [r for r in valid if key in r]
        if rows:
            ax_m.semilogy([r["epoch"] for r in rows], [r[key] for r in rows], "o-", ms=3, label=label)
    ax_m.set(xlabel="epoch", title="validation errors")
    if ax_m.lines:
        ax_m.legend()
    fig.tight_layout()
    return fig


def learning_curves(history: Sequence[dict], path) -> None:
    """Write :func:`learning_curves_figure` to ``path`` (PNG)."""
    _save(learning_curves_figure(history), path)

