r"""Figures computed by the package: the ACE features of one environment, and the receptive field of MACE
(message passing) versus ACE.

:func:`ace_features_figure` (``figures/ace_features.png``) follows one atom of a real molecule (ethanol from the
bundled GFN2-xTB data) through the stages of the atomic cluster expansion, each number computed by the package:
its edges r_ij, the one-particle basis φ of every edge (notebook 01), the atomic basis A = Σ_j φ_j (Eq. 9,
notebook 02), the products A ⊗ A (inside Eq. 10) and the invariant B-functions of orders ν = 1, 2, 3 (Eq. 10,
notebook 03).

MACE (Batatia et al., NeurIPS 2022, arXiv:2206.07697 v2), in its text (no figure of the paper is reproduced
here; ``figures/mpnn_ace.png`` is minimace's own drawing): a message-passing network with T layers
and cutoff r_c lets the site energy E_i depend on atoms up to T·r_c away, *through a chain of neighbours*
(each layer of Eq. 8 sums over the neighbours j of i, whose features h_j^{(t)} already hold their own
neighbours). A linear ACE with one cutoff (Drautz 2019) has a receptive field of exactly that cutoff: to
see as far as a two-layer MACE it needs a cutoff 2·r_c, with many more neighbours per sphere.

:func:`receptive_field_experiment` measures it: four atoms i—j—k—l on a zig-zag chain with bonds shorter than
r_c and every other distance longer, so that k is between r_c and 2·r_c from i and can reach i only through j.
Moving k changes E_i of a two-layer MACE, but not of a one-layer MACE nor of an ACE with cutoff r_c (their
changes are exactly zero: E_i does not depend on r_k at all); an ACE with cutoff 2·r_c feels it directly.

``python -m minimace.figures`` writes every figure of the repository (``figures/ace_features.png``,
``figures/mpnn_ace.png``), byte-identically on one matplotlib version (fixed PNG metadata, no dates).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import ase
import numpy as np
import torch
from matplotlib.figure import Figure

from .ace import ACEBasis
from .datasets import bundled
from .graph import atoms_to_graph
from .model import MACE
from .radial import BesselBasis, PolynomialCutoff
from .so3 import spherical_harmonics
from .symmetric import b_functions, coupling_basis

__all__ = ["ace_features_example", "ace_features_figure",
           "chain_atoms", "mace_node_energies", "ace_node_energies", "receptive_field_experiment",
           "receptive_field_figure", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]
LABELS = ("i", "j", "k", "l")


# ---------------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------------
def chain_atoms(r_c: float = 3.0, bond_fraction: float = 0.7, angle_deg: float = 150.0) -> ase.Atoms:
    """Zig-zag chain i—j—k—l (C, O, C, H) with bonds ``bond_fraction·r_c`` and bond angles ``angle_deg``.

    Only consecutive atoms are closer than r_c; |r_ik| and |r_jl| lie in (r_c, 2 r_c), |r_il| > 2 r_c.
    """
    b = bond_fraction * r_c
    half = math.radians(angle_deg) / 2
    dx, dy = b * math.sin(half), b * math.cos(half)
    positions = [[0.0, 0.0, 0.0], [dx, dy, 0.0], [2 * dx, 0.0, 0.0], [3 * dx, dy, 0.0]]  # i, j, k, l
    return ase.Atoms("COCH", positions=positions, pbc=False)


def mace_node_energies(model: MACE, atoms: ase.Atoms, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """E_i [n_atoms] of ``model`` (Eq. 13) on the graph with the model's own cutoff."""
    graph = atoms_to_graph(atoms, model.config["r_max"], dtype=dtype)
    return model(graph, compute_forces=False)["node_energy"].detach()  # [n_atoms]


def ace_node_energies(basis: ACEBasis, coefficients: torch.Tensor, atoms: ase.Atoms,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Linear ACE site energies E_i = Σ_η c_η B_{i,η} [n_atoms] with cutoff ``basis.r_max``."""
    graph = atoms_to_graph(atoms, basis.r_max, dtype=dtype)
    B = basis(graph["positions"], graph["atomic_numbers"], graph["edge_index"], graph["shifts"])  # [n_atoms, n_B]
    return B @ coefficients.to(B.dtype)  # [n_atoms]


def _small_mace(r_c: float, num_interactions: int, dtype: torch.dtype, seed: int) -> MACE:
    torch.manual_seed(seed)
    model = MACE(r_max=r_c, num_bessel=6, max_ell=2, correlation=2, num_interactions=num_interactions,
                 hidden_irreps="8x0e+8x1o", MLP_irreps="4x0e", radial_MLP=[16, 16], atomic_numbers=[1, 6, 8])
    return model.to(dtype)


def _small_ace(r_max: float, dtype: torch.dtype, seed: int) -> tuple[ACEBasis, torch.Tensor]:
    basis = ACEBasis([1, 6, 8], r_max=r_max, n_max=4, l_max=2, max_degree=(4, 5, 4)).to(dtype)
    gen = torch.Generator().manual_seed(seed)
    return basis, torch.randn(basis.num_basis, generator=gen, dtype=torch.float64).to(dtype)


def receptive_field_experiment(r_c: float = 3.0, delta: float = 0.3, dtype: torch.dtype = torch.float64,
                               seed: int = 0) -> dict:
    """Change of the site energy E_i when atom k moves by ``delta`` Å away from j, for several models.

    Parameters
    ----------
    r_c : float
        Cutoff of the MACE models and of the short ACE (Å); the long ACE has 2·r_c.
    delta : float
        Displacement of atom k along the bond j→k (Å); the bond stays shorter than r_c.
    dtype : torch.dtype
        float32 or float64.
    seed : int
        Seed of the random weights (MACE) and coefficients (ACE).

    Returns
    -------
    dict
        ``atoms`` (ase.Atoms, before), ``moved`` (after), ``r_c``, ``delta``, ``distances`` (|r_ij|, |r_ik|,
        |r_il|, |r_jk| before the move, Å), ``dE_i`` {model name: |ΔE_i|} with the names
        ``"MACE T=1"``, ``"MACE T=2"``, ``"MACE T=2, no j"`` (the intermediate atom removed), ``"ACE r_c"``,
        ``"ACE 2r_c"``, and ``dE_k`` {name: |ΔE_k|} (the moved atom's own energy, a positive control).
    """
    atoms = chain_atoms(r_c)
    pos = atoms.get_positions()
    bond = (pos[2] - pos[1]) / np.linalg.norm(pos[2] - pos[1])
    moved = atoms.copy()
    moved.positions[2] += delta * bond
    models = {f"MACE T={T}": _small_mace(r_c, T, dtype, seed) for T in (1, 2)}
    energy = {name: (lambda a, m=m: mace_node_energies(m, a, dtype)) for name, m in models.items()}
    for name, r in (("ACE r_c", r_c), ("ACE 2r_c", 2 * r_c)):
        basis, c = _small_ace(r, dtype, seed)
        energy[name] = lambda a, basis=basis, c=c: ace_node_energies(basis, c, a, dtype)
    dE_i, dE_k = {}, {}
    for name, E in energy.items():
        diff = (E(moved) - E(atoms)).abs()  # [4]
        dE_i[name], dE_k[name] = float(diff[0]), float(diff[2])
    without_j = [0, 2, 3]  # i, k, l: k is still within 2 r_c of i but no chain connects them
    E = energy["MACE T=2"]
    dE_i["MACE T=2, no j"] = float((E(moved[without_j]) - E(atoms[without_j])).abs()[0])
    d = lambda a, b: float(np.linalg.norm(pos[a] - pos[b]))  # noqa: E731
    distances = {"ij": d(0, 1), "ik": d(0, 2), "il": d(0, 3), "jk": d(1, 2) + delta}
    return dict(atoms=atoms, moved=moved, r_c=r_c, delta=delta, distances=distances, dE_i=dE_i, dE_k=dE_k)


# ---------------------------------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------------------------------
COLOURS = {"i": "#d62728", "j": "#1f77b4", "k": "#2ca02c", "l": "#7f7f7f"}


def _fmt(x: float) -> str:
    return "0 (exactly)" if x == 0.0 else f"{x:.2e} eV"


def _note(ax, lines) -> None:
    """A boxed monospace note in the lower-left corner of ``ax`` (the measured numbers)."""
    ax.text(0.02, 0.02, "\n".join(lines), transform=ax.transAxes, family="monospace", fontsize=8.5,
            va="bottom", bbox=dict(fc="w", ec="0.7"))


def _draw_chain(ax, xy: np.ndarray, moved_k: np.ndarray) -> None:
    ax.plot(xy[:, 0], xy[:, 1], color="0.8", lw=1, zorder=1)
    for label, (x, y) in zip(LABELS, xy):
        ax.scatter([x], [y], s=260, color=COLOURS[label], zorder=3, edgecolor="k")
        ax.annotate(label, (x, y), ha="center", va="center", color="w", fontsize=11, weight="bold", zorder=4)
    ax.scatter([moved_k[0]], [moved_k[1]], s=260, facecolor="none", edgecolor=COLOURS["k"], ls="--", zorder=2)
    ax.annotate("", moved_k, xy[2], arrowprops=dict(arrowstyle="->", color=COLOURS["k"]))


def _circle(ax, centre, radius, colour, label, ls="--") -> None:
    from matplotlib.patches import Circle

    ax.add_patch(Circle(centre, radius, fill=False, ls=ls, lw=1.5, color=colour, label=label))


def _arrow(ax, start, end, colour, text="", offset=(0, -18)) -> None:
    ax.annotate("", end, start, arrowprops=dict(arrowstyle="-|>", color=colour, lw=2, shrinkA=12, shrinkB=12))
    mid = (np.asarray(start) + np.asarray(end)) / 2
    ax.annotate(text, mid, xytext=offset, textcoords="offset points", ha="center", color=colour, fontsize=9)


def receptive_field_figure(path=None, results: dict | None = None) -> Figure:
    """Left: two message-passing steps of cutoff r_c (MACE); right: one ACE sphere of radius 2·r_c.

    Each panel is annotated with the changes |ΔE_i| measured by :func:`receptive_field_experiment`
    (computed now unless ``results`` is given). Written as PNG to ``path`` when given.
    """
    res = receptive_field_experiment() if results is None else results
    r_c, dE = res["r_c"], res["dE_i"]
    xy = res["atoms"].get_positions()[:, :2]
    moved_k = res["moved"].get_positions()[2, :2]
    fig = Figure(figsize=(12, 6.2))
    ax_m, ax_a = fig.subplots(1, 2)
    _circle(ax_m, xy[0], r_c, COLOURS["i"], "layer 1: r_c around i")
    _circle(ax_m, xy[1], r_c, COLOURS["j"], "layer 2: r_c around j")
    _circle(ax_m, xy[0], 2 * r_c, "0.6", "2·r_c around i (for comparison)", ls=":")
    _arrow(ax_m, xy[2], xy[1], COLOURS["k"], "t = 1: r_k enters h_j", offset=(10, 16))
    _arrow(ax_m, xy[1], xy[0], COLOURS["j"], "t = 2: h_j enters E_i", offset=(-10, -24))
    _draw_chain(ax_m, xy, moved_k)
    ax_m.set_title(f"MACE, 2 layers of cutoff r_c = {r_c:g} Å: receptive field 2·r_c")
    _note(ax_m, [
        f"k moved by {res['delta']:g} Å (|r_ik| = {res['distances']['ik']:.2f} Å > r_c):",
        f"  |ΔE_i| MACE T=2          = {_fmt(dE['MACE T=2'])}",
        f"  |ΔE_i| MACE T=1          = {_fmt(dE['MACE T=1'])}",
        f"  |ΔE_i| MACE T=2, j removed = {_fmt(dE['MACE T=2, no j'])}",
    ])
    _circle(ax_a, xy[0], r_c, COLOURS["i"], "r_c around i", ls=":")
    _circle(ax_a, xy[0], 2 * r_c, "k", "2·r_c around i")
    for n in (1, 2):
        _arrow(ax_a, xy[n], xy[0], COLOURS[LABELS[n]])
    ax_a.annotate(f"|r_il| = {res['distances']['il']:.2f} Å > 2·r_c", xy[3], xytext=(0, 16),
                  textcoords="offset points", ha="center", fontsize=8.5)
    _draw_chain(ax_a, xy, moved_k)
    ax_a.set_title(f"ACE, one cutoff 2·r_c = {2 * r_c:g} Å: every atom inside talks to i directly")
    _note(ax_a, [
        f"k moved by {res['delta']:g} Å:",
        f"  |ΔE_i| ACE cutoff 2·r_c = {_fmt(dE['ACE 2r_c'])}",
        f"  |ΔE_i| ACE cutoff r_c   = {_fmt(dE['ACE r_c'])}",
    ])
    lo, hi = xy.min(0) - 2.1 * r_c, xy.max(0) + 1.1 * r_c
    for ax in (ax_m, ax_a):
        ax.set(xlim=(lo[0], hi[0]), ylim=(xy[0, 1] - 2.6 * r_c, xy[0, 1] + 2.2 * r_c), xlabel="x [Å]", ylabel="y [Å]")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle("Receptive field: |ΔE_i| when atom k moves (numbers computed by minimace, float64, random weights)")
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


# ---------------------------------------------------------------------------------------------------
# The ACE features of one environment
# ---------------------------------------------------------------------------------------------------
def ace_features_example(centre: int = 2, r_c: float = 3.0, lmax: int = 2, n: int = 1, p: int = 5) -> dict:
    """The stages of ACE for atom ``centre`` of the first ethanol of the bundled data (float64).

    One channel: the radial function R(r) = j_n(r) f_p(r) (Bessel × envelope, element-blind), so that
    φ_{j,lm} = R(r_ij) Y_lm(r̂_ij), A_lm = Σ_j φ_{j,lm} and B = Σ C 𝐀 with the invariant (L = 0, even)
    coupling tensors of :func:`~minimace.symmetric.coupling_basis` for ν = 1, 2, 3.

    Returns
    -------
    dict
        ``atoms``, ``centre``, ``r_c``, ``lmax``, ``n``, ``neighbours`` [N] (atom indices j), ``r_ij`` [N, 3],
        ``phi`` [N, d], ``A`` [d], ``AA`` [d, d], ``B`` {ν: [n_ν] invariants}, ``labels`` {ν: block labels}.
    """
    atoms = bundled("train", index="0")[0].to_atoms()
    graph = atoms_to_graph(atoms, r_c, dtype=torch.float64)
    i, j = graph["edge_index"]
    mine = i == centre
    neighbours = j[mine]
    r_ij = graph["positions"][neighbours] - graph["positions"][centre] + graph["shifts"][mine]  # [N, 3]
    r = r_ij.norm(dim=1, keepdim=True)  # [N, 1]
    R = BesselBasis(r_c, n).double()(r)[:, n - 1 : n] * PolynomialCutoff(r_c, p)(r)  # [N, 1]
    phi = R * spherical_harmonics(lmax, r_ij, normalize=True)  # [N, d]
    A = phi.sum(0)  # [d]
    B, labels = {}, {}
    for nu in (1, 2, 3):
        U = coupling_basis(lmax, nu, 0, 1, dtype=torch.float64)  # [1, d, ..., d, n_ν]
        B[nu] = b_functions(A, U)[0]  # [n_ν]
        labels[nu] = [_block_label(U[0, ..., e], lmax) for e in range(U.shape[-1])]
    return dict(atoms=atoms, centre=centre, r_c=r_c, lmax=lmax, n=n, neighbours=neighbours.numpy(),
                r_ij=r_ij.numpy(), phi=phi.numpy(), A=A.numpy(), AA=np.outer(A.numpy(), A.numpy()),
                B={k: v.numpy() for k, v in B.items()}, labels=labels)


def _block_label(T: torch.Tensor, lmax: int) -> str:
    """Degrees (l_1, ..., l_ν) of the block where the coupling tensor ``T`` [d, ..., d] is non-zero."""
    index = np.argwhere(T.abs().numpy() > 1e-12)[0]
    ls = sorted(int(math.isqrt(int(k))) for k in index)
    return "(" + ",".join(map(str, ls)) + ")"


def _lm_labels(lmax: int) -> list[str]:
    return [f"{l},{m}" for l in range(lmax + 1) for m in range(-l, l + 1)]


def _table(ax, values: np.ndarray, rows: list[str], cols: list[str], title: str, fmt="{:+.2f}") -> None:
    """A heat map of ``values`` with every number written in its cell."""
    vmax = float(np.abs(values).max()) or 1.0
    ax.imshow(values, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    for (a, b), v in np.ndenumerate(values):
        ax.text(b, a, fmt.format(v), ha="center", va="center", fontsize=8,
                color="w" if abs(v) > 0.6 * vmax else "k")
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(title, fontsize=10)


ELEMENT_COLOURS = {1: "#d9d9d9", 6: "#4d4d4d", 8: "#d62728"}
ELEMENT_NAMES = {1: "H", 6: "C", 8: "O"}


def ace_features_figure(path=None, example: dict | None = None) -> Figure:
    """edges → φ per edge → A = Σ_j φ_j → A ⊗ A → invariant B-functions, for one atom of ethanol.

    The numbers are those of :func:`ace_features_example` (computed now unless ``example`` is given).
    Written as PNG to ``path`` when given.
    """
    ex = ace_features_example() if example is None else example
    lmax, centre, r_c = ex["lmax"], ex["centre"], ex["r_c"]
    Z, pos = ex["atoms"].numbers, ex["atoms"].get_positions()
    lm = _lm_labels(lmax)
    rows = [f"j={j} {ELEMENT_NAMES[Z[j]]}  r={np.linalg.norm(v):.2f} Å" for j, v in zip(ex["neighbours"], ex["r_ij"])]
    fig = Figure(figsize=(15, 11))
    grid = fig.add_gridspec(3, 3, width_ratios=[1.0, 1.3, 1.1], height_ratios=[1.0, 0.17, 1.05])
    # (a) the environment
    ax = fig.add_subplot(grid[0, 0])
    xy = pos[:, :2] - pos[centre, :2]
    for j, v in zip(ex["neighbours"], ex["r_ij"]):
        ax.plot([0, v[0]], [0, v[1]], color="#1f77b4", lw=1.5, zorder=1)
    for k, (x, y) in enumerate(xy):
        ax.scatter([x], [y], s=420 if Z[k] > 1 else 240, color=ELEMENT_COLOURS[Z[k]], edgecolor="k", zorder=3)
        ax.annotate(f"{ELEMENT_NAMES[Z[k]]}{k}", (x, y), ha="center", va="center", fontsize=8, zorder=4,
                    color="w" if Z[k] > 1 else "k", weight="bold")
    from matplotlib.patches import Circle

    ax.add_patch(Circle((0, 0), r_c, fill=False, ls="--", color="#1f77b4"))
    ax.set(xlim=(-r_c - 0.3, r_c + 0.3), ylim=(-r_c - 0.3, r_c + 0.3), xlabel="x [Å]", ylabel="y [Å]")
    ax.set_aspect("equal")
    ax.set_title(f"1. edges r_ij: the {len(rows)} neighbours j of atom i = "
                 f"{ELEMENT_NAMES[Z[centre]]}{centre}\nwithin r_c = {r_c:g} Å (ethanol, bundled GFN2-xTB data; "
                 "xy projection)", fontsize=10)
    # (b) φ per edge
    ax = fig.add_subplot(grid[0, 1:])
    _table(ax, ex["phi"], rows, lm, f"2. one-particle basis of each edge: φ_j,lm = R(r_ij) Y_lm(r̂_ij),  "
           f"R(r) = j_{ex['n']}(r) f_5(r)   (columns: l,m with l ≤ {lmax})")
    # (c) A
    ax = fig.add_subplot(grid[1, 1:])
    _table(ax, ex["A"][None, :], ["A_lm"], lm, "3. atomic basis A_lm = Σ_j φ_j,lm   (each column above, summed "
           "over the neighbours j)")
    # the relations, checked on the numbers shown
    ax = fig.add_subplot(grid[1:, 0])
    ax.axis("off")
    A, B = ex["A"], ex["B"]
    power = [float((A[l * l:(l + 1) ** 2] ** 2).sum() / math.sqrt(2 * l + 1)) for l in range(lmax + 1)]
    lines = ["How B comes from A (this environment):", "",
             f"ν = 1:  B = A_00 = {A[0]:+.4f}", "",
             "ν = 2:  B_l = Σ_m A_lm² / √(2l+1)"]
    lines += [f"        l = {l}:  {power[l]:+.4f}   (bar: {B[2][l]:+.4f})" for l in range(lmax + 1)]
    lines += ["", "ν = 3:  B = Σ C^{00}_{l1m1 l2m2 l3m3}", "            A_l1m1 A_l2m2 A_l3m3,",
              "        one per block l1 ≤ l2 ≤ l3", "        (generalized Clebsch–Gordan C,",
              "        minimace.symmetric.coupling_basis)", "",
              "Every number is recomputed by", "python -m minimace.figures"]
    ax.text(0.02, 0.98, "\n".join(lines), transform=ax.transAxes, va="top", family="monospace", fontsize=9,
            bbox=dict(fc="w", ec="0.7"))
    # (d) A ⊗ A
    ax = fig.add_subplot(grid[2, 1])
    _table(ax, ex["AA"], lm, lm, "4. product basis A_lm A_l'm' (ν = 2; ν = 3 adds a factor)", fmt="{:.2f}")
    for t in ax.texts:
        t.set_fontsize(6.5)
    # (e) B
    ax = fig.add_subplot(grid[2, 2])
    names, values, colours = [], [], []
    for nu, colour in zip((1, 2, 3), ("#1f77b4", "#ff7f0e", "#2ca02c")):
        for label, v in zip(ex["labels"][nu], ex["B"][nu]):
            names.append(f"ν={nu} l={label}")
            values.append(float(v))
            colours.append(colour)
    y = np.arange(len(values))[::-1]
    ax.barh(y, values, color=colours)
    for yy, v in zip(y, values):
        ax.text(v, yy, f" {v:+.4f} ", va="center", ha="left" if v >= 0 else "right", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    lo, hi = min(0.0, min(values)), max(0.0, max(values))
    ax.set_xlim(lo - 0.45 * (hi - lo), hi + 0.45 * (hi - lo))
    ax.set_title("5. invariant B-functions B = Σ C^{00} A⊗…⊗A\n(symmetrised: one per block (l_1,…,l_ν))",
                 fontsize=10)
    fig.suptitle(f"ACE features of one environment, computed by minimace (float64): "
                 f"edges → φ → A = Σ_j φ → products → B", fontsize=12)
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def _save(fig: Figure, path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    import matplotlib

    # fixed metadata (the default of this matplotlib version, no date): the same input gives the same bytes
    metadata = {"Software": f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"}
    fig.savefig(os.fspath(path), dpi=120, bbox_inches="tight", metadata=metadata)


def main(argv=None) -> int:
    """Write every figure of the repository: ``figures/ace_features.png``, ``figures/mpnn_ace.png``
    (or into the folder ``argv[0]``)."""
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else REPO_ROOT / "figures"
    for name, draw in (("ace_features.png", ace_features_figure), ("mpnn_ace.png", receptive_field_figure)):
        draw(folder / name)
        print(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
