"""Load a mace-torch 0.3.16 ``MACE`` / ``ScaleShiftMACE`` model into :class:`minimace.MACE` (same outputs).

Only the weights are read (no mace-torch import is needed here, the model object is duck-typed); the
architecture is the one of ``RealAgnosticInteractionBlock`` then ``RealAgnosticResidualInteractionBlock``.

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
(Monte Carlo estimates) are copied too, and mace's (over-complete) coupling tensors U are used as they are.
"""

from __future__ import annotations

import torch

from .model import MACE

__all__ = ["from_mace_torch", "mace_config"]


def _act_constant(act) -> float:
    """e3nn ``normalize2mom`` constant (1.0 when e3nn treats it as identity)."""
    return 1.0 if getattr(act, "_is_id", False) else float(act.cst)


def _gate_name(readout) -> str:
    f = readout.non_linearity.acts[0].f
    for name, fn in (("silu", torch.nn.functional.silu), ("tanh", torch.tanh), ("abs", torch.abs)):
        if f is fn:
            return name
    raise ValueError(f"unsupported gate {f} in the mace-torch readout")


def mace_config(mm) -> dict:
    """The :class:`minimace.MACE` keyword arguments of a mace-torch model ``mm``."""
    T = len(mm.interactions)
    E0 = mm.atomic_energies_fn.atomic_energies.detach().double()
    if E0.dim() == 2:
        if E0.shape[0] != 1 and E0.shape[1] != 1:
            raise ValueError("multi-head mace-torch models are not supported")
        E0 = E0.reshape(-1)
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
    mace_model : mace.modules.MACE or ScaleShiftMACE
        With ``RealAgnosticInteractionBlock`` first and ``RealAgnosticResidualInteractionBlock`` after,
        one head, Bessel radial basis, polynomial cutoff applied to the radial features (defaults).

    Returns
    -------
    MACE
        Same dtype as ``mace_model``; same energies and forces (to rounding).
    """
    mm = mace_model
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
