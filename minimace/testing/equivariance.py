r"""Numerical checks of the symmetries of a function: :math:`f(g\cdot x) = g\cdot f(x)`.

MACE is built to be equivariant to the Euclidean group E(3) — rotations, reflections (parity) and
translations — and to permutations of identical atoms (Batatia et al. 2022, Eqs. 5–6).
``assert_equivariant`` checks all four, on any stage or on the full model, by transforming the inputs and
the outputs of a function with random group elements and comparing.

How to describe how a value transforms (a *kind*), for every input and every output:

==================== =========================================================================== ==========
kind                 action of :math:`g = (R, t)`, :math:`R \in O(3)`                            example
==================== =========================================================================== ==========
``None``             not transformed (must be left unchanged)                                    atomic numbers
``"8x0e+8x1o"``      last axis in "mul_ir" layout: :math:`x \mapsto D(R)\, x` (``irreps_D``)     features
``"0e"`` / ``"0o"``  scalars of any shape: unchanged / times :math:`\det R`                    energies
``"cartesian_points"`` last axis of size 3: :math:`x \mapsto R x + t`                            positions
``"cartesian_vectors"`` last axis of size 3: :math:`v \mapsto R v` (same as ``"1o"``)            forces, cell rows
``"cartesian_matrix"`` last two axes 3×3: :math:`\sigma \mapsto R \sigma R^\top`                  stress
==================== =========================================================================== ==========

Inputs and outputs may be a tensor, a tuple/list, or a dict; the kinds mirror that structure (dict keys
without a kind are ``None``, i.e. untransformed inputs or unchecked outputs). For permutations of atoms,
``atoms_in`` / ``atoms_out`` mirror the same structure with ``"atoms"`` (axis 0 indexes atoms: ``x[perm]``),
``"atom_index"`` (the values are atom indices, e.g. ``edge_index``: ``inverse_perm[x]``) or ``None``
(unchanged by the permutation, e.g. a total energy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ..so3 import Irreps, irreps_D, random_O3, random_rotation

POINTS, VECTORS, MATRIX = "cartesian_points", "cartesian_vectors", "cartesian_matrix"
ATOMS, ATOM_INDEX = "atoms", "atom_index"

#: default (atol, rtol) per dtype: a leaf passes when max|f(gx) - g f(x)| <= atol + rtol * max|g f(x)|
DEFAULT_TOLERANCES = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-5, 1e-5)}


# ---------------------------------------------------------------------------------------------------
# Actions of the group on one tensor, and on nested structures of tensors
# ---------------------------------------------------------------------------------------------------
def transform(kind, x: torch.Tensor, R: torch.Tensor, t: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Apply :math:`g = (R, t)` to ``x`` of the given kind (see the module docstring)."""
    if kind is None:
        return x
    R = R.to(dtype=x.dtype, device=x.device)
    if kind == POINTS:
        return x @ R.T + (0 if t is None else t.to(dtype=x.dtype, device=x.device))
    if kind == VECTORS:
        return x @ R.T
    if kind == MATRIX:
        return R @ x @ R.T
    irreps = Irreps(kind)
    if len(irreps) > 0 and all(ir.l == 0 and ir.p == irreps[0].ir.p for _, ir in irreps):
        # scalars (e.g. energies [B]) have no irreps axis: any shape, times det(R) for "0o"
        return x if irreps[0].ir.p == 1 else x * torch.det(R)
    if x.shape[-1] != irreps.dim:
        raise ValueError(f"a value of kind {kind!r} needs a last axis of size {irreps.dim}, got {tuple(x.shape)}")
    return x @ irreps_D(irreps, R).T


def permute(kind, x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Apply the permutation of atoms ``new atom k = old atom perm[k]`` to ``x`` of kind ``atoms``/``atom_index``."""
    if kind is None:
        return x
    perm = perm.to(x.device)
    if kind == ATOMS:
        return x[perm]
    if kind == ATOM_INDEX:
        return torch.argsort(perm)[x]
    raise ValueError(f"unknown atom kind {kind!r}: expected 'atoms', 'atom_index' or None")


def _map(fn: Callable, kinds, value, path: str = ""):
    """Apply ``fn(kind, tensor)`` to every tensor leaf of ``value`` with the kind at the same place."""
    if isinstance(value, dict):
        kinds = kinds if isinstance(kinds, dict) else {}
        return {k: _map(fn, kinds.get(k), v, f"{path}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        kinds = kinds if isinstance(kinds, (tuple, list)) else [kinds] * len(value)
        if len(kinds) != len(value):
            raise ValueError(f"{path or 'value'}: {len(value)} items but {len(kinds)} kinds")
        return type(value)(_map(fn, k, v, f"{path}[{i}]") for i, (k, v) in enumerate(zip(kinds, value)))
    if isinstance(value, torch.Tensor):
        return fn(kinds, value)
    if kinds is not None:
        raise TypeError(f"{path or 'value'} has kind {kinds!r} but is a {type(value).__name__}, not a tensor")
    return value


def _leaves(kinds, value, path: str = "out"):
    """(path, kind, tensor) for every tensor leaf that has a kind."""
    if isinstance(value, dict):
        kinds = kinds if isinstance(kinds, dict) else {}
        for k in kinds:
            if k not in value:
                raise KeyError(f"{path}: the output has no key {k!r} (keys: {list(value)})")
        for k, v in value.items():
            if k in kinds:
                yield from _leaves(kinds[k], v, f"{path}[{k!r}]")
    elif isinstance(value, (tuple, list)):
        kinds = kinds if isinstance(kinds, (tuple, list)) else [kinds] * len(value)
        for i, (k, v) in enumerate(zip(kinds, value)):
            yield from _leaves(k, v, f"{path}[{i}]")
    elif isinstance(value, torch.Tensor):
        yield path, kinds, value


def _has_kind(kinds, wanted) -> bool:
    if isinstance(kinds, dict):
        return any(_has_kind(k, wanted) for k in kinds.values())
    if isinstance(kinds, (tuple, list)):
        return any(_has_kind(k, wanted) for k in kinds)
    return kinds == wanted


def _first_float_tensor(value):
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else []
    for v in items:
        found = _first_float_tensor(v)
        if found is not None:
            return found
    return None


def _fresh(x: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """A transformed input is a new leaf (a model may call ``requires_grad_`` on it)."""
    new = new.detach().clone()
    return new.requires_grad_(x.requires_grad) if new.is_floating_point() else new


# ---------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------
@dataclass
class EquivarianceReport:
    """Largest error of each test over all trials: ``errors[test] = (error, bound, output path)``."""

    dtype: torch.dtype
    errors: dict = field(default_factory=dict)

    def add(self, test: str, path: str, error: float, bound: float) -> None:
        old = self.errors.get(test)
        if old is None or error / bound > old[0] / old[1]:
            self.errors[test] = (error, bound, path)

    @property
    def failures(self) -> dict:
        return {k: v for k, v in self.errors.items() if not v[0] <= v[1]}

    @property
    def max_error(self) -> float:
        return max((e for e, _, _ in self.errors.values()), default=0.0)

    def __str__(self) -> str:
        lines = [f"equivariance report ({self.dtype}):"]
        for test, (err, bound, path) in self.errors.items():
            status = "ok  " if err <= bound else "FAIL"
            lines.append(f"  {status} {test:<12} max error {err:.3e} (bound {bound:.1e}) at {path}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------------
def assert_equivariant(
    fn: Callable,
    args_in,
    irreps_in,
    irreps_out,
    *,
    atoms_in=None,
    atoms_out=None,
    permutation=None,
    tests=("rotation", "reflection", "translation", "permutation"),
    n_trials: int = 3,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
    seed: int = 0,
) -> EquivarianceReport:
    r"""Check :math:`f(g\cdot x) = g\cdot f(x)` for random rotations, reflections, translations, permutations.

    Parameters
    ----------
    fn : callable
        Called as ``fn(*args_in)``; returns a tensor, a tuple/list or a dict of tensors.
    args_in : tuple
        Positional arguments (tensors, or dicts/tuples of tensors such as the batch dict).
    irreps_in, irreps_out : kinds
        For each argument / output, its kind (module docstring): an irreps string or ``Irreps``,
        ``"cartesian_points"``, ``"cartesian_vectors"``, ``"cartesian_matrix"`` or ``None``. They mirror the
        structure of ``args_in`` (a tuple, one entry per argument) and of the output.
    atoms_in, atoms_out : kinds, optional
        Permutation kinds (``"atoms"``, ``"atom_index"``, ``None``) with the same structure. The permutation
        test runs only when ``atoms_in`` is given; outputs with kind ``None`` must then be invariant.
    permutation : tensor or callable, optional
        The permutation of atoms (``new k = old perm[k]``), or ``permutation(n_atoms, generator)`` returning
        one (e.g. ``permutation_within_graphs(ptr)`` for a batch); default: uniform over all atoms.
    tests : sequence of str
        Subset of ``("rotation", "reflection", "translation", "permutation")``. "reflection" uses random
        improper :math:`R` (det -1), so it checks the parities; "translation" runs only if an input has
        kind ``"cartesian_points"``.
    n_trials : int
        Random group elements per test.
    atol, rtol : float, optional
        A leaf passes when ``max|f(gx) - g f(x)| <= atol + rtol * max|g f(x)|``. Defaults by dtype of the
        first floating input: float64 (1e-12, 1e-12), float32 (1e-5, 1e-5).
    seed : int
        Seed of the random group elements.

    Returns
    -------
    EquivarianceReport
        Largest error and its bound for every test run.

    Raises
    ------
    AssertionError
        If any output of any test exceeds its bound; the message shows the full report.
    """
    args_in = tuple(args_in)
    irreps_in = tuple(irreps_in) if isinstance(irreps_in, (tuple, list)) else (irreps_in,)
    if len(irreps_in) != len(args_in):
        raise ValueError(f"{len(args_in)} inputs but {len(irreps_in)} entries in irreps_in")
    ref = _first_float_tensor(args_in)
    dtype = ref.dtype if ref is not None else torch.get_default_dtype()
    d_atol, d_rtol = DEFAULT_TOLERANCES.get(dtype, DEFAULT_TOLERANCES[torch.float32])
    atol, rtol = d_atol if atol is None else atol, d_rtol if rtol is None else rtol
    gen = torch.Generator().manual_seed(seed)
    report = EquivarianceReport(dtype)

    out = fn(*args_in)

    def compare(test: str, out_g, expected) -> None:
        for (path, _, a), (_, _, b) in zip(_leaves(irreps_out, out_g), _leaves(irreps_out, expected)):
            err = (a.detach() - b.detach()).abs().max().item() if a.numel() else 0.0
            scale = b.detach().abs().max().item() if b.numel() else 0.0
            report.add(test, path, err, atol + rtol * scale)

    for test in tests:
        for _ in range(n_trials):
            if test in ("rotation", "reflection", "translation"):
                if test == "translation" and not _has_kind(irreps_in, POINTS):
                    break
                R = _group_element(test, gen)
                t = 10 * torch.randn(3, dtype=torch.float64, generator=gen) if test == "translation" else None
                act_in = lambda k, x: _fresh(x, transform(k, x, R, t))  # noqa: E731
                act_out = lambda k, x: transform(k, x.detach(), R)  # noqa: E731
                compare(test, fn(*_map(act_in, irreps_in, args_in)), _map(act_out, irreps_out, out))
            elif test == "permutation":
                if atoms_in is None:
                    break
                perm = _permutation(permutation, atoms_in, args_in, gen)
                kinds_in = tuple(atoms_in) if isinstance(atoms_in, (tuple, list)) else (atoms_in,)
                act_in = lambda k, x: _fresh(x, permute(k, x, perm))  # noqa: E731
                act_out = lambda k, x: permute(k, x.detach(), perm)  # noqa: E731
                compare(test, fn(*_map(act_in, kinds_in, args_in)), _map(act_out, atoms_out, out))
            else:
                raise ValueError(f"unknown test {test!r}")

    if report.failures:
        raise AssertionError(f"function is not equivariant:\n{report}")
    return report


def _group_element(test: str, gen: torch.Generator) -> torch.Tensor:
    R = random_rotation(dtype=torch.float64, generator=gen)
    return -R if test == "reflection" else R  # -R: an improper element (inversion times a rotation)


def _permutation(permutation, atoms_in, args_in, gen) -> torch.Tensor:
    if isinstance(permutation, torch.Tensor):
        return permutation
    kinds_in = tuple(atoms_in) if isinstance(atoms_in, (tuple, list)) else (atoms_in,)
    sizes = [x.shape[0] for _, k, x in _leaves(kinds_in, args_in, "in") if k == ATOMS]
    if not sizes:
        raise ValueError("atoms_in marks no input with 'atoms': cannot tell the number of atoms")
    n_atoms = sizes[0]
    if permutation is None:
        return torch.randperm(n_atoms, generator=gen)
    return permutation(n_atoms, gen)


def permutation_within_graphs(ptr: torch.Tensor) -> Callable:
    """A ``permutation`` for ``assert_equivariant`` that shuffles atoms inside each graph of a batch only."""

    def perm(n_atoms: int, gen: torch.Generator) -> torch.Tensor:
        bounds = ptr.tolist()
        assert bounds[-1] == n_atoms, f"ptr ends at {bounds[-1]} but there are {n_atoms} atoms"
        return torch.cat([a + torch.randperm(b - a, generator=gen) for a, b in zip(bounds[:-1], bounds[1:])])

    return perm


# ---------------------------------------------------------------------------------------------------
# The batch dict of docs/ARCHITECTURE.md and the outputs of MACE.forward
# ---------------------------------------------------------------------------------------------------
BATCH_KINDS = {"positions": POINTS, "cell": VECTORS, "shifts": VECTORS}  # cell: lattice vectors as rows
BATCH_ATOMS = {"positions": ATOMS, "atomic_numbers": ATOMS, "batch": ATOMS, "edge_index": ATOM_INDEX}
MODEL_OUTPUT_KINDS = {"energy": "0e", "node_energy": "0e", "forces": VECTORS, "stress": MATRIX,
                      "virials": MATRIX}
MODEL_OUTPUT_ATOMS = {"energy": None, "node_energy": ATOMS, "forces": ATOMS, "stress": None, "virials": None}


def assert_model_equivariant(model: Callable, batch: dict, **kwargs) -> EquivarianceReport:
    """``assert_equivariant`` for ``model(batch) -> dict`` with the batch dict of docs/ARCHITECTURE.md.

    Rotates positions, cell (rows) and shifts; translates positions; permutes atoms inside each graph
    (``edge_index`` relabelled); checks every output among energy, node_energy, forces, stress and
    virials that the model returns. Extra keyword arguments go to ``assert_equivariant``.

    Examples
    --------
    >>> report = assert_model_equivariant(lambda b: model(b, compute_stress=True), batch)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    equivariance report (torch.float64):
      ok   rotation     max error 1.110e-15 (bound 1.6e-12) at out['virials']
      ...
    """
    out_keys = set(model(batch))
    kinds_out = {k: v for k, v in MODEL_OUTPUT_KINDS.items() if k in out_keys}
    atoms_out = {k: v for k, v in MODEL_OUTPUT_ATOMS.items() if k in out_keys}
    kwargs.setdefault("permutation", permutation_within_graphs(batch["ptr"]))
    return assert_equivariant(model, (batch,), (BATCH_KINDS,), kinds_out, atoms_in=(BATCH_ATOMS,),
                              atoms_out=atoms_out, **kwargs)
