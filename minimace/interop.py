"""Load a mace-torch 0.3.16 ``MACE`` / ``ScaleShiftMACE`` model into :class:`minimace.MACE` (same outputs).

MACE (Batatia et al. 2022, arXiv:2206.07697), Eqs. 7–13, as the official implementation builds it with
``RealAgnosticInteractionBlock`` (first layer) and ``RealAgnosticResidualInteractionBlock`` (later layers).
Only the weights are read: the returned model runs minimace's own modules, no mace-torch code.
This module never imports mace-torch at import time (it lives in its own environment); the functions that
need it (:func:`load_mace_torch_file`, :func:`mace_torch_batch`) import it when called.

Correspondence (mace-torch -> minimace):

============================================  ==============================================
``node_embedding.linear.weight``              ``embedding.weight`` [n_elements, k]
``radial_embedding.bessel_fn.*``              ``edge_embedding.bessel.{frequencies,prefactor}``
``interactions[t].linear_up.weight``          ``atomic_bases[t].linear_up.weight``
``interactions[t].conv_tp_weights.layerK``    ``atomic_bases[t].radial_mlp.weights[K]`` (*)
``interactions[t].linear.weight``             ``atomic_bases[t].linear.weight``
``interactions[0].skip_tp.weight``            ``atomic_bases[0].element_linear.weight``
``interactions[t>0].skip_tp.weight``          ``updates[t].self_connection.weight``
``products[t].symmetric_contractions``        ``messages[t].contractions[c].{U_ν, weights[ν-1]}``
``products[t].linear.weight``                 ``updates[t].linear.weight``
``readouts[t].linear`` / ``linear_1/2``       ``readouts[t].linear`` / ``linear_1/2``
``atomic_energies_fn.atomic_energies``        ``atomic_energies.atomic_energies``
``scale_shift.{scale,shift}``                 ``scale_shift.{scale,shift}``
============================================  ==============================================

(*) mace-torch evaluates Y on r_i − r_j (from the neighbour to the centre), minimace on r_ij = r_j − r_i.
Y_l(−r) = (−1)^l Y_l(r), so the radial weights of every path with an odd l_sh are negated (the matching
output columns of the radial MLP's last layer). The activation normalisation constants stored by e3nn
(Monte Carlo estimates) are copied too, and mace's (over-complete) coupling tensors U are used as they are
(minimace's own basis, ``symmetric.coupling_basis``, is smaller and spans the same space: notebook 08).

Saved models (``torch.save(model, path)``, as ``mace_run_train`` writes them) are read by
:func:`from_mace_torch_file` with ``torch.load(weights_only=True)`` and an explicit allow-list of the
mace-torch / e3nn / torch classes a supported model is made of (:data:`SAFE_GLOBALS`): a file naming any other
function or class (``os.system``, ``builtins.exec``, ...) is refused before anything runs. Two things an
ordinary ``torch.load`` of a mace-torch model executes are not executed either: the Python source of its
``torch.fx.GraphModule`` contractions (replaced by inert modules) and the TorchScript blobs of e3nn's code
generation (dropped). The loaded mace-torch object is therefore for reading weights only.

Helpers for side-by-side checks (notebook 08, ``tests/mace``): :func:`mace_torch_batch` builds a batch with
mace-torch's own data pipeline, :func:`compare_with_mace_torch` evaluates both models on the same structures
with their own neighbour lists, and :func:`use_own_coupling_basis` moves the product-basis weights from
mace-torch's over-complete U onto minimace's exact basis (Eq. 10) without changing the outputs.
"""

from __future__ import annotations

import importlib
import itertools
import math
import os
import pickle
import re
import zipfile
from typing import Optional, Sequence, Union

import torch

from .graph import atoms_to_graph, batch_graphs
from .model import MACE
from .so3 import Irrep, Irreps
from .symmetric import coupling_basis

__all__ = [
    "from_mace_torch",
    "from_mace_torch_file",
    "load_mace_torch_file",
    "check_supported",
    "mace_config",
    "mace_torch_batch",
    "compare_with_mace_torch",
    "use_own_coupling_basis",
    "UnsafeModelFileError",
    "SAFE_GLOBALS",
]

_GATES = {"silu": torch.nn.functional.silu, "tanh": torch.tanh, "abs": torch.abs}


# ----------------------------------------------------------------------------- what is supported
def _unsupported(option: str, value, expected: str) -> NotImplementedError:
    return NotImplementedError(
        f"minimace.interop does not support the mace-torch option {option}={value!r} (supported: {expected})"
    )


def check_supported(mm) -> None:
    """Raise ``NotImplementedError`` naming the first option of ``mm`` that minimace cannot reproduce.

    Supported: ``MACE`` / ``ScaleShiftMACE`` with one head, ``RealAgnosticInteractionBlock`` then
    ``RealAgnosticResidualInteractionBlock``, Bessel radial basis with the polynomial cutoff applied to it,
    no distance transform, no pair repulsion, no extra embeddings, element-dependent products, the plain
    e3nn/mace-torch kernels (no cuEquivariance / OpenEquivariance), a linear readout on every layer and a
    non-linear readout on the last one (which keeps only scalars), natural-parity hidden irreps with one
    multiplicity (``16x0e``, ``16x0e+16x1o``, ``8x0e+8x1o+8x2e``), gate ``silu``, ``tanh`` or ``abs``.
    """
    name = type(mm).__name__
    if name not in ("MACE", "ScaleShiftMACE"):
        raise _unsupported("model class", name, "MACE, ScaleShiftMACE")
    heads = list(getattr(mm, "heads", ["Default"]))
    if len(heads) != 1:
        raise _unsupported("heads", heads, "a single head")
    flags = [("pair_repulsion", hasattr(mm, "pair_repulsion"), False),
             ("embedding_specs", hasattr(mm, "joint_embedding"), False),
             ("use_so3", bool(getattr(mm, "use_so3", False)), False),
             ("use_agnostic_product", bool(getattr(mm, "use_agnostic_product", False)), False),
             ("use_last_readout_only", bool(getattr(mm, "use_last_readout_only", False)), False),
             ("edge_irreps", getattr(mm, "edge_irreps", None) is not None, False),
             ("distance_transform", hasattr(mm.radial_embedding, "distance_transform"), False),
             ("apply_cutoff", bool(getattr(mm.radial_embedding, "apply_cutoff", True)), True)]
    for option, value, ok in flags:
        if value != ok:
            raise _unsupported(option, value, repr(ok))
    radial = type(mm.radial_embedding.bessel_fn).__name__
    if radial != "BesselBasis":
        raise _unsupported("radial_type", radial, "'bessel' (BesselBasis)")
    for t, (inter, prod) in enumerate(zip(mm.interactions, mm.products)):
        want = "RealAgnosticInteractionBlock" if t == 0 else "RealAgnosticResidualInteractionBlock"
        option = "interaction_cls_first" if t == 0 else "interaction_cls"
        if type(inter).__name__ != want:
            raise _unsupported(option, type(inter).__name__, want)
        kernels = [type(inter.conv_tp).__name__, type(prod.symmetric_contractions).__name__]
        if kernels != ["TensorProduct", "SymmetricContraction"] or hasattr(inter, "conv_fusion"):
            raise _unsupported("cueq_config/oeq_config", kernels, "e3nn's TensorProduct and SymmetricContraction")
    T = len(mm.interactions)
    kinds = [type(r).__name__ for r in mm.readouts]
    want = ["LinearReadoutBlock"] * (T - 1) + ["NonLinearReadoutBlock" if T > 1 else "LinearReadoutBlock"]
    if kinds != want:
        raise _unsupported("readout_cls", kinds, str(want))
    hidden = Irreps(str(mm.products[0].linear.irreps_out))
    k = hidden[0].mul
    if any(mi.ir.p != (-1) ** mi.ir.l or mi.mul != k for mi in hidden) or hidden[0].ir != Irrep(0, 1):
        raise _unsupported("hidden_irreps", str(hidden), "k x 0e + k x 1o + k x 2e + ... (natural parity, one k)")
    last = Irreps(str(mm.products[-1].linear.irreps_out))
    if T > 1 and last.lmax > 0:
        raise _unsupported("keep_last_layer_irreps", True, "False (the last layer keeps only scalars)")
    if T > 1:
        gate = mm.readouts[-1].non_linearity.acts[0]
        f = getattr(gate, "f", None)
        if not any(f is fn for fn in _GATES.values()):
            raise _unsupported("gate", f, "silu, tanh or abs")
    E0 = mm.atomic_energies_fn.atomic_energies
    if E0.dim() == 2 and 1 not in E0.shape:
        raise _unsupported("atomic_energies", "one column per head", "one E0 per element")
    if hasattr(mm, "scale_shift") and (mm.scale_shift.scale.numel() != 1 or mm.scale_shift.shift.numel() != 1):
        raise _unsupported("atomic_inter_scale/shift", "one value per head", "one scale and one shift")


def _act_constant(act) -> float:
    """e3nn ``normalize2mom`` constant (1.0 when e3nn treats it as identity)."""
    return 1.0 if getattr(act, "_is_id", False) else float(act.cst)


def _gate_name(readout) -> str:
    f = readout.non_linearity.acts[0].f
    return next(name for name, fn in _GATES.items() if f is fn)


def mace_config(mm) -> dict:
    """The :class:`minimace.MACE` keyword arguments of a (supported) mace-torch model ``mm``."""
    T = len(mm.interactions)
    E0 = mm.atomic_energies_fn.atomic_energies.detach().double().reshape(-1)
    hidden = mm.interactions[1].node_feats_irreps if T > 1 else mm.products[0].linear.irreps_out
    return dict(
        r_max=float(mm.r_max),
        num_bessel=int(mm.radial_embedding.bessel_fn.bessel_weights.numel()),
        num_polynomial_cutoff=int(mm.radial_embedding.cutoff_fn.p),
        max_ell=int(mm.spherical_harmonics.irreps_out.lmax),
        correlation=[int(p.symmetric_contractions.contractions[0].correlation) for p in mm.products],
        num_interactions=T,
        hidden_irreps=str(hidden),
        MLP_irreps=str(mm.readouts[-1].hidden_irreps) if T > 1 else "16x0e",
        radial_MLP=[int(h) for h in mm.interactions[0].radial_MLP],
        avg_num_neighbors=float(mm.interactions[0].avg_num_neighbors),
        atomic_numbers=[int(z) for z in mm.atomic_numbers],
        atomic_energies=E0.tolist(),
        atomic_inter_scale=float(mm.scale_shift.scale) if hasattr(mm, "scale_shift") else 1.0,
        atomic_inter_shift=float(mm.scale_shift.shift) if hasattr(mm, "scale_shift") else 0.0,
        gate=_gate_name(mm.readouts[-1]) if T > 1 else "silu",
    )


# ----------------------------------------------------------------------------- copying the weights
def _copy(dst: torch.Tensor, src: torch.Tensor, what: str) -> None:
    if dst.numel() != src.numel():
        raise ValueError(f"{what}: {src.numel()} numbers in mace-torch, {dst.numel()} in minimace")
    dst.copy_(src.detach().reshape(dst.shape))


def _radial_mlp(ab, inter) -> None:
    fc = inter.conv_tp_weights
    layers = [getattr(fc, f"layer{k}") for k in range(len(ab.radial_mlp.weights))]
    for k, (w, layer) in enumerate(zip(ab.radial_mlp.weights, layers)):
        _copy(w, layer.weight, f"radial MLP layer {k}")
    ab.radial_mlp.act_norm.fill_(_act_constant(layers[0].act))
    # mace's conv_tp paths must be ours, in the same order: (input block, l_sh, output irrep)
    theirs = [(ins.i_in1, ins.i_in2, str(inter.conv_tp.irreps_out[ins.i_out].ir)) for ins in inter.conv_tp.instructions]
    ours = [(i, l2, str(ir)) for i, l2, ir in ab.conv_tp.paths]
    if theirs != ours:
        raise ValueError(f"tensor-product paths differ: mace {theirs}, minimace {ours}")
    last, start = ab.radial_mlp.weights[-1], 0
    for i, l2, _ in ab.conv_tp.paths:
        mul = ab.conv_tp.irreps_in1[i].mul
        if l2 % 2 == 1:
            last[:, start : start + mul] *= -1.0  # Y_l(-r) = (-1)^l Y_l(r)
        start += mul


def _contractions(message, sym) -> None:
    for ours, theirs in zip(message.contractions, sym.contractions):
        N = ours.correlation
        for nu in range(1, N + 1):
            U = theirs.U_tensors(nu).detach()
            if U.dim() == nu + 1:  # mace drops the M axis for L = 0
                U = U.unsqueeze(0)
            ours.set_U(nu, U)
            W = theirs.weights_max if nu == N else theirs.weights[N - 1 - nu]
            _copy(ours.weights[nu - 1], W, f"product weights nu={nu}")


@torch.no_grad()
def from_mace_torch(mace_model) -> MACE:
    """A :class:`minimace.MACE` with the architecture and weights of a mace-torch 0.3.16 model.

    Parameters
    ----------
    mace_model : mace.modules.MACE or ScaleShiftMACE, or str / os.PathLike
        A model object, or the path of a model file saved with ``torch.save(model, path)``
        (then read safely by :func:`from_mace_torch_file`). Options minimace does not reproduce raise
        ``NotImplementedError`` naming the option (:func:`check_supported`).

    Returns
    -------
    MACE
        Same dtype as ``mace_model``; same energies, forces and stress (to rounding).
    """
    if isinstance(mace_model, (str, os.PathLike)):
        return from_mace_torch_file(mace_model)
    mm = mace_model
    check_supported(mm)
    dtype = mm.node_embedding.linear.weight.dtype
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model = MACE(**mace_config(mm))
    finally:
        torch.set_default_dtype(previous)
    _copy(model.embedding.weight, mm.node_embedding.linear.weight, "node embedding")
    model.edge_embedding.bessel.frequencies.copy_(mm.radial_embedding.bessel_fn.bessel_weights)
    model.edge_embedding.bessel.prefactor.copy_(mm.radial_embedding.bessel_fn.prefactor)
    for t, (inter, prod) in enumerate(zip(mm.interactions, mm.products)):
        ab = model.atomic_bases[t]
        _copy(ab.linear_up.weight, inter.linear_up.weight, f"layer {t} linear_up")
        _radial_mlp(ab, inter)
        _copy(ab.linear.weight, inter.linear.weight, f"layer {t} linear")
        if t == 0:
            _copy(ab.element_linear.weight, inter.skip_tp.weight, "layer 0 skip_tp")
        else:
            _copy(model.updates[t].self_connection.weight, inter.skip_tp.weight, f"layer {t} skip_tp")
        _contractions(model.messages[t], prod.symmetric_contractions)
        _copy(model.updates[t].linear.weight, prod.linear.weight, f"layer {t} product linear")
    for ours, theirs in zip(model.readouts, mm.readouts):
        if hasattr(theirs, "linear_1"):
            _copy(ours.linear_1.weight, theirs.linear_1.weight, "readout linear_1")
            _copy(ours.linear_2.weight, theirs.linear_2.weight, "readout linear_2")
            ours.act_norm.fill_(_act_constant(theirs.non_linearity.acts[0]))
        else:
            _copy(ours.linear.weight, theirs.linear.weight, "readout linear")
    return model.to(dtype)


def _symmetric_part(U: torch.Tensor) -> torch.Tensor:
    """Average of ``U [M, d, ..., d, P]`` over the permutations of its ν ``d`` axes."""
    nu = U.dim() - 2
    perms = list(itertools.permutations(range(1, nu + 1)))
    return sum(U.permute(0, *p, nu + 1) for p in perms) / len(perms)


@torch.no_grad()
def use_own_coupling_basis(model: MACE) -> MACE:
    """Replace mace-torch's over-complete U^{(ν)} by minimace's exact basis, projecting the weights (in place).

    Only the symmetric part of U meets the symmetric product basis (Eq. 10), and it lies in the span of
    ``symmetric.coupling_basis``: Sym(U_mace) = U_own X (X by least squares; residual checked). The weights
    W_own = X W_mace give the same messages with fewer weights (e.g. 8 instead of 23 for l_max = 3, ν = 3,
    L = 0), so the outputs are unchanged to rounding. The span is checked to 100 ε of the dtype of the
    stored U (mace-torch rounds U to its default dtype).
    """
    for message in model.messages:
        for c in message.contractions:
            lmax = math.isqrt(c.d) - 1
            for nu in range(1, c.correlation + 1):
                U_old, W_old = c.U(nu), c.weights[nu - 1]
                tol = 100 * torch.finfo(U_old.dtype).eps
                U_old = U_old.double()
                U_own = coupling_basis(lmax, nu, c.irrep_out.l, c.irrep_out.p, dtype=torch.float64)
                S = _symmetric_part(U_old).reshape(-1, U_old.shape[-1])  # [(2L+1)·d^ν, P_mace]
                Q = U_own.reshape(-1, U_own.shape[-1])  # [(2L+1)·d^ν, P_own]
                X = torch.linalg.lstsq(Q, S).solution  # [P_own, P_mace]
                residual = float((Q @ X - S).abs().max()) if S.numel() else 0.0
                if residual > tol * max(float(S.abs().max()) if S.numel() else 0.0, 1.0):
                    raise ValueError(f"U^({nu}) of {c.irrep_out} is not in the span of the exact basis "
                                     f"(residual {residual:.1e})")
                W = torch.einsum("op,epk->eok", X, W_old.double())  # [E, P_own, k]
                c.set_U(nu, U_own)
                c.weights[nu - 1] = torch.nn.Parameter(W.to(W_old.dtype))
    return model


# ----------------------------------------------------------------------------- model files
#: Every global a saved, supported mace-torch 0.3.16 model may name, and nothing else.
SAFE_GLOBALS = (
    "mace.modules.models.MACE",
    "mace.modules.models.ScaleShiftMACE",
    "mace.modules.blocks.LinearNodeEmbeddingBlock",
    "mace.modules.blocks.RadialEmbeddingBlock",
    "mace.modules.blocks.RealAgnosticInteractionBlock",
    "mace.modules.blocks.RealAgnosticResidualInteractionBlock",
    "mace.modules.blocks.EquivariantProductBasisBlock",
    "mace.modules.blocks.LinearReadoutBlock",
    "mace.modules.blocks.NonLinearReadoutBlock",
    "mace.modules.blocks.AtomicEnergiesBlock",
    "mace.modules.blocks.ScaleShiftBlock",
    "mace.modules.radial.BesselBasis",
    "mace.modules.radial.PolynomialCutoff",
    "mace.modules.irreps_tools.reshape_irreps",
    "mace.modules.symmetric_contraction.SymmetricContraction",
    "mace.modules.symmetric_contraction.Contraction",
    "e3nn.o3._irreps.Irrep",
    "e3nn.o3._irreps._MulIr",
    "e3nn.o3._irreps.Irreps",
    "e3nn.o3._linear.Linear",
    "e3nn.o3._linear.Instruction",
    "e3nn.o3._tensor_product._tensor_product.TensorProduct",
    "e3nn.o3._tensor_product._sub.FullyConnectedTensorProduct",
    "e3nn.o3._tensor_product._instruction.Instruction",
    "e3nn.o3._spherical_harmonics.SphericalHarmonics",
    "e3nn.nn._fc.FullyConnectedNet",
    "e3nn.nn._fc._Layer",
    "e3nn.nn._activation.Activation",
    "e3nn.math._normalize_activation.normalize2mom",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.ParameterList",
    "torch.nn.functional.silu",
    "torch.tanh",
    "torch.abs",
    "torch.fx._symbolic_trace.Tracer",
)
_GRAPH_MODULE = "torch.fx.graph_module.reduce_graph_module"


class UnsafeModelFileError(pickle.UnpicklingError):
    """A model file names something outside :data:`SAFE_GLOBALS`; nothing in it was executed."""


class _InertGraphModule(torch.nn.Module):
    """Stands in for a pickled ``torch.fx.GraphModule``: its Python source is never executed."""

    def forward(self, *args, **kwargs):
        raise RuntimeError("this mace-torch model was loaded by minimace for its weights only; it cannot run")


def _inert_graph_module(body, import_block):  # replaces torch.fx.graph_module.reduce_graph_module
    return _InertGraphModule()


def _setstate_without_code(self, state):
    """Restore an e3nn ``CodeGenMixin`` module without loading the TorchScript stored in the file."""
    state = dict(state)
    state.pop("__codegen__", None)
    torch.nn.Module.__setstate__(self, state)


def _resolve(path: str):
    module, _, name = path.rpartition(".")
    obj = getattr(importlib.import_module(module), name)
    from e3nn.util.codegen import CodeGenMixin

    if isinstance(obj, type) and issubclass(obj, CodeGenMixin):
        obj = type(obj.__name__, (obj,), {"__setstate__": _setstate_without_code, "__module__": __name__})
    return obj


def _is_torchscript(path) -> bool:
    """TorchScript archives (``torch.jit.save``) hold a ``constants.pkl``; ``torch.save`` files do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") for name in archive.namelist())


def load_mace_torch_file(path: Union[str, os.PathLike], map_location="cpu"):
    """Read a mace-torch model file (``torch.save(model, path)``) for its weights, executing nothing from it.

    ``torch.load(weights_only=True)`` with only :data:`SAFE_GLOBALS` allowed (mace-torch must be
    installed). Generated code stored in the file is not run, so the returned object cannot be evaluated;
    pass it to :func:`from_mace_torch`.

    Raises
    ------
    NotImplementedError
        The file is a TorchScript archive (``*_compiled.model``), not a pickled model.
    UnsafeModelFileError
        The file names a function or class outside the allow-list (e.g. a malicious payload, or a model
        built from blocks minimace does not support); the name is in the message.
    """
    try:
        import mace.modules  # noqa: F401  (the classes of the file; mace must be imported before e3nn.o3)
    except ImportError as err:
        raise ImportError("reading a mace-torch model file needs mace-torch installed (e.g. .venv-mace)") from err

    allowed = [(_resolve(name), name) for name in SAFE_GLOBALS] + [(_inert_graph_module, _GRAPH_MODULE)]
    if _is_torchscript(path):
        raise NotImplementedError(
            f"{os.fspath(path)!r} is a TorchScript archive (like mace-torch's *_compiled.model); "
            "minimace.interop reads the model file written by torch.save(model, path) (mace's *.model)"
        )
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)|function (<[^>]*>|\S+)|got (<class [^>]*>)", str(err))
        what = next((g for g in found.groups() if g), "") if found else str(err).splitlines()[0]
        raise UnsafeModelFileError(
            f"refusing to load {os.fspath(path)!r}: it needs {what}, which is not one of the mace-torch/e3nn/torch "
            "classes of a supported MACE model (minimace.interop.SAFE_GLOBALS); nothing outside that list was called"
        ) from None


def from_mace_torch_file(path: Union[str, os.PathLike]) -> MACE:
    """:func:`from_mace_torch` of a saved model file, read by :func:`load_mace_torch_file` (safely)."""
    return from_mace_torch(load_mace_torch_file(path))


# ----------------------------------------------------------------------------- side-by-side comparisons
def mace_torch_batch(atoms_list: Sequence, mace_model, info_keys: Optional[dict] = None,
                     arrays_keys: Optional[dict] = None) -> dict:
    """A batch built by mace-torch's own data pipeline (its neighbour list, one-hot, batching).

    ``config_from_atoms`` → ``AtomicData.from_config`` (matscipy neighbour list) →
    ``torch_geometric.Batch``, in the dtype of ``mace_model``; labels are read with mace-torch's key
    names (e.g. ``info_keys={"energy": "dft_energy"}, arrays_keys={"forces": "dft_force"}``).
    """
    from mace import data as mace_data
    from mace.tools import AtomicNumberTable, torch_geometric, torch_tools

    keys = mace_data.KeySpecification(info_keys=dict(info_keys or {}), arrays_keys=dict(arrays_keys or {}))
    z_table = AtomicNumberTable([int(z) for z in mace_model.atomic_numbers])
    dtype = mace_model.node_embedding.linear.weight.dtype
    with torch_tools.default_dtype(dtype):
        graphs = [
            mace_data.AtomicData.from_config(
                mace_data.config_from_atoms(atoms, key_specification=keys),
                z_table=z_table,
                cutoff=float(mace_model.r_max),
            )
            for atoms in atoms_list
        ]
    return torch_geometric.Batch.from_data_list(graphs).to_dict()


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours − theirs| / max |theirs|."""
    return float((ours.detach() - theirs.detach()).abs().max() / theirs.detach().abs().max())


def compare_with_mace_torch(
    mace_model, model: MACE, atoms_list: Sequence, compute_stress: Optional[bool] = None
) -> dict:
    """Evaluate both models on the same structures, each with its own neighbour list and batching.

    The energies include the E0s; to compare interaction energies without the cancellation in
    E − Σ E0, set the E0s of both models to zero first.

    Returns
    -------
    dict
        ``edges`` (mace-torch, minimace); the largest relative differences (max |Δ| / max |mace|) of
        ``energy``, ``forces`` and, for periodic input, ``stress`` and ``virials``; the raw outputs ``mace`` and
        ``minimace``.
    """
    periodic = all(bool(a.pbc.all()) for a in atoms_list)
    compute_stress = periodic if compute_stress is None else compute_stress
    dtype = model.embedding.weight.dtype
    theirs_batch = mace_torch_batch(atoms_list, mace_model)
    theirs = mace_model(theirs_batch, compute_force=True, compute_stress=compute_stress)
    ours_batch = batch_graphs([atoms_to_graph(a, model.config["r_max"], dtype=dtype) for a in atoms_list])
    ours = model(ours_batch, compute_forces=True, compute_stress=compute_stress)
    out = {
        "edges": (int(theirs_batch["edge_index"].shape[1]), int(ours_batch["edge_index"].shape[1])),
        "energy": _relative(ours["energy"], theirs["energy"]),
        "forces": _relative(ours["forces"], theirs["forces"]),
    }
    if compute_stress:
        out["stress"] = _relative(ours["stress"], theirs["stress"])
        out["virials"] = _relative(ours["virials"], theirs["virials"])
    out["mace"], out["minimace"] = theirs, ours
    return out
