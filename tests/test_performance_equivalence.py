"""The fast paths equal the plain (teaching) forms of the equations (docs/performance.md).

- ``ConvTensorProduct.neighbour_sum`` = Σ_j of the per-edge tensor product ``ConvTensorProduct.forward``
  (Eq. 8 as written), values and gradients;
- ``AtomicBasis.forward`` = the per-edge pipeline linear_up → R(r) → TP → Σ_j → linear / n̄ (→ W_z);
- ``message.Contraction.forward`` (the product basis over sorted index tuples with U folded onto them, only the
  tuples U couples to) = mace-torch's order of the sums (T = U·W per node, then a recursion over the dense d^ν
  index), values, dm/dA and dm/dW;
- ``MACE.chunk_size`` (edge and atom chunks under gradient checkpointing) = no chunking: energies, forces,
  stress and training gradients.

Every checker has a negative control: a deliberately broken fast path must fail it.
"""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from minimace import MACE
from minimace.atomic_basis import AtomicBasis, ConvTensorProduct, scatter_sum
from minimace.graph import atoms_to_graph, batch_graphs

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
A_IRREPS = "4x0e+4x1o+4x2e+4x3o"


def random_graph(n_nodes=7, n_edges=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    centre = torch.randint(0, n_nodes, (n_edges,), generator=g)
    neighbour = (centre + torch.randint(1, n_nodes, (n_edges,), generator=g)) % n_nodes
    return torch.stack([centre, neighbour])


def assert_close_rel(a, b, tol, what=""):
    """max |a - b| <= tol · max(1, max |b|)."""
    a, b = a.detach(), b.detach()
    err = float((a - b).abs().max()) if a.numel() else 0.0
    scale = max(1.0, float(b.abs().max()) if b.numel() else 0.0)
    assert err <= tol * scale, f"{what}: max |Δ| = {err:.2e} > {tol:.0e} · {scale:.2e}"


def plain_neighbour_sum(tp, h, Y, w, edge_index):
    """Σ_{j∈N(i)} TP(h_j, Y_ij, w_ij) as Eq. 8 reads: per-edge products, then the sum over neighbours."""
    return scatter_sum(tp(h[edge_index[1]], Y, w), edge_index[0], h.shape[0])


def check_neighbour_sum(fast, tp, dtype, seed=0):
    """Values and gradients (w.r.t. h, Y and the radial weights) of ``fast`` equal the plain form."""
    edge_index = random_graph(seed=seed)
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(7, tp.irreps_in1.dim, dtype=dtype, generator=g).requires_grad_(True)
    Y = torch.randn(edge_index.shape[1], tp.sh_irreps.dim, dtype=dtype, generator=g).requires_grad_(True)
    w = torch.randn(edge_index.shape[1], tp.weight_numel, dtype=dtype, generator=g).requires_grad_(True)
    ref = plain_neighbour_sum(tp, h, Y, w, edge_index)
    out = fast(h, Y, w, edge_index)
    assert out.shape == ref.shape and out.dtype == dtype
    assert_close_rel(out, ref, TOL[dtype], "value")
    probe = torch.randn(ref.shape, dtype=dtype, generator=g)
    g_ref = torch.autograd.grad((ref * probe).sum(), (h, Y, w))
    g_out = torch.autograd.grad((out * probe).sum(), (h, Y, w))
    for name, a, b in zip(("h", "Y", "w"), g_out, g_ref):
        assert_close_rel(a, b, TOL[dtype], f"gradient w.r.t. {name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("irreps_in", ["4x0e", "4x0e+4x1o", "3x0e+2x1o+2x2e+1x3o"])
def test_neighbour_sum_equals_per_edge_tensor_product(dtype, irreps_in):
    tp = ConvTensorProduct(irreps_in, 3, A_IRREPS).to(dtype)
    check_neighbour_sum(tp.neighbour_sum, tp, dtype)


def test_neighbour_sum_checker_fails_on_broken_fast_paths():
    """Negative controls: a dropped sqrt(2l3+1), swapped centre/neighbour, or a missing path are caught."""
    tp = ConvTensorProduct("4x0e+4x1o", 3, A_IRREPS).to(torch.float64)

    def no_sqrt(h, Y, w, ei):
        out = tp.neighbour_sum(h, Y, w, ei)
        return out / torch.tensor([ir.dim**0.5 for _, _, ir in tp.paths for _ in range(4 * ir.dim)], dtype=out.dtype)

    def swapped(h, Y, w, ei):
        return tp.neighbour_sum(h, Y, w, ei.flip(0))

    def dropped_path(h, Y, w, ei):
        out = tp.neighbour_sum(h, Y, w, ei).clone()
        out[:, -4 * tp.paths[-1][2].dim :] = 0.0
        return out

    for broken in (no_sqrt, swapped, dropped_path):
        with pytest.raises(AssertionError):
            check_neighbour_sum(broken, tp, torch.float64)


def plain_atomic_basis(ab, h, species, Y, radial, edge_index):
    """A_i of Eq. 8 from the per-edge tensor product (the form taught in the notebooks)."""
    h = ab.linear_up(h)
    R = ab.radial_mlp(radial)
    A = ab.linear(plain_neighbour_sum(ab.conv_tp, h, Y, R, edge_index)) / ab.avg_num_neighbors
    return ab.element_linear(A, species) if ab.first_layer else A


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("node_irreps,first", [("4x0e", True), ("4x0e+4x1o", False)])
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_atomic_basis_equals_plain_form(dtype, node_irreps, first, chunk_size):
    torch.manual_seed(0)
    ab = AtomicBasis(node_irreps, 3, A_IRREPS, 6, [8, 8], 3.0, 3, first).to(dtype)
    edge_index = random_graph()
    h = torch.randn(7, ab.node_irreps.dim, dtype=dtype)
    species = torch.randint(0, 3, (7,))
    Y = torch.randn(edge_index.shape[1], 16, dtype=dtype)
    radial = torch.randn(edge_index.shape[1], 6, dtype=dtype)
    out = ab(h, species, Y, radial, edge_index, chunk_size=chunk_size)
    assert_close_rel(out, plain_atomic_basis(ab, h, species, Y, radial, edge_index), TOL[dtype])


# ----------------------------------------------------------------------------- chunking of the whole model
def small_model(dtype):
    torch.manual_seed(0)
    return MACE(r_max=3.5, num_bessel=6, num_polynomial_cutoff=5, max_ell=2, correlation=3, num_interactions=2,
                hidden_irreps="4x0e+4x1o", MLP_irreps="4x0e", radial_MLP=[8, 8], avg_num_neighbors=4.0,
                atomic_numbers=[1, 6, 8], atomic_energies=[-1.0, -3.0, -5.0]).to(dtype)


def water_and_ethanol(dtype):
    rng = np.random.default_rng(1)
    cell = np.diag([4.6, 4.9, 5.1])
    water = Atoms("OH2OH2OH2", positions=rng.uniform(0, 4.5, (9, 3)), cell=cell, pbc=True)
    eth = molecule("CH3CH2OH")
    eth.positions += 0.05 * rng.standard_normal(eth.positions.shape)
    return batch_graphs([atoms_to_graph(a, 3.5, dtype=dtype) for a in (water, eth)])


def check_chunking(model, chunk_size, dtype):
    """Energies, forces, stress and the training gradient agree with and without chunks."""
    batch = water_and_ethanol(dtype)
    model.chunk_size = None
    ref = model(batch, compute_forces=True, compute_stress=True)
    ref_loss = (ref["forces"] ** 2).sum()  # training loss on forces: needs the second derivative
    ref_grad = torch.autograd.grad(
        (model(batch, training=True)["forces"] ** 2).sum(), list(model.parameters()), allow_unused=True
    )
    model.chunk_size = chunk_size
    try:
        out = model(batch, compute_forces=True, compute_stress=True)
        grad = torch.autograd.grad(
            (model(batch, training=True)["forces"] ** 2).sum(), list(model.parameters()), allow_unused=True
        )
    finally:
        model.chunk_size = None
    for key in ("energy", "forces", "stress"):
        assert_close_rel(out[key].detach(), ref[key].detach(), TOL[dtype], key)
    assert float(ref_loss) > 0
    for a, b in zip(grad, ref_grad):
        if b is not None:
            assert_close_rel(a, b, TOL[dtype], "training gradient")


@pytest.mark.parametrize("dtype", DTYPES)
def test_chunked_model_equals_unchunked(dtype):
    model = small_model(dtype)
    n_edges = water_and_ethanol(dtype)["edge_index"].shape[1]
    assert n_edges > 4 * 32  # several edge chunks, and 32 // 16 = 2 atoms per chunk of the product basis
    check_chunking(model, 32, dtype)


def test_chunk_checker_fails_on_a_broken_chunked_path(monkeypatch):
    """Negative control: losing the last edge chunk must be caught."""
    model = small_model(torch.float64)
    original = AtomicBasis.neighbour_sum

    def drops_short_chunks(self, h, Y, radial, edge_index):
        out = original(self, h, Y, radial, edge_index)
        return out * 0.0 if Y.shape[0] < 32 else out

    monkeypatch.setattr(AtomicBasis, "neighbour_sum", drops_short_chunks)
    with pytest.raises(AssertionError):
        check_chunking(model, 32, torch.float64)


# ----------------------------------------------------------------------------- symmetric contraction
def plain_message(c, A, species):
    """Eq. 11 by mace-torch's order of the sums: T^{(ν)} = U^{(ν)} · W^{(ν)} (dense U) gathered per node, then the
    Horner-like recursion c^(ν) = Σ_i (T^(ν) + c^(ν+1))_i A_i over the full d^ν index (no sorted tuples, no folding)."""
    n, k, d = A.shape
    T = [torch.einsum("qp,epk->ekq", c.U(nu).reshape(-1, c.U(nu).shape[-1]), c.weights[nu - 1]).reshape(
        c.weights[nu - 1].shape[0], k, -1, d)[species] for nu in range(1, c.correlation + 1)]  # [n, k, M·d^(ν-1), d]
    m = torch.einsum("nkqi,nki->nkq", T[-1], A)
    for nu in range(c.correlation - 1, 0, -1):
        m = torch.einsum("nkqi,nki->nkq", T[nu - 1] + m.reshape(n, k, -1, d), A)
    return m.reshape(n, -1)


def check_contraction(c, A, species, dtype):
    """Values and gradients (w.r.t. A and every W^{(ν)}) of the module equal :func:`plain_message`."""
    out, ref = c(A, species), plain_message(c, A, species)
    assert_close_rel(out, ref, TOL[dtype], "value")
    probe = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    inputs = [A, *c.weights]
    g_out, g_ref = (torch.autograd.grad((x * probe).sum(), inputs) for x in (out, ref))
    for name, a, b in zip(["A"] + [f"W^({nu})" for nu in range(1, c.correlation + 1)], g_out, g_ref):
        assert_close_rel(a, b, TOL[dtype], f"gradient w.r.t. {name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L", ["0e", "1o", "2e"])
def test_contraction_equals_plain_form(dtype, L):
    """Product basis over sorted tuples with the folded U, per-node W: same m, dm/dA and dm/dW."""
    from minimace.message import Contraction

    torch.manual_seed(0)
    c = Contraction(3, L, 3, 4, 5).to(dtype)
    species = torch.tensor([2, 0, 2, 2, 0])  # elements 1 and 3 absent
    A = torch.randn(5, 5, 16, dtype=dtype, requires_grad=True)
    check_contraction(c, A, species, dtype)


def test_contraction_checker_fails_on_a_broken_fold():
    """Negative control: a folded U that counts each sorted tuple once (not once per ordering) must fail."""
    from minimace.message import Contraction

    torch.manual_seed(0)
    c = Contraction(2, "0e", 3, 2, 3).double()
    A = torch.randn(4, 3, 9, dtype=torch.float64, requires_grad=True)
    species = torch.tensor([0, 1, 1, 0])
    check_contraction(c, A, species, torch.float64)  # the checker passes on the module as it is
    U = c.U(3)
    tuples = c.monomials_3  # [S, 3] sorted
    c.U_sym_3 = U[:, tuples[:, 0], tuples[:, 1], tuples[:, 2]].transpose(1, 2).reshape(-1, tuples.shape[0])
    with pytest.raises(AssertionError):
        check_contraction(c, A, species, torch.float64)


def test_contraction_fold_follows_a_loaded_U():
    """The folded U is recomputed when a state dict replaces U; negative control: a stale fold differs."""
    from minimace.message import Contraction

    torch.manual_seed(0)
    a, b = Contraction(2, "1o", 2, 2, 3).double(), Contraction(2, "1o", 2, 2, 3).double()
    with torch.no_grad():
        b.U_2.copy_(torch.randn_like(b.U_2))  # dense and not symmetric: every tuple coupled
    a.load_state_dict(b.state_dict())
    species = torch.tensor([0, 1, 1])
    A = torch.randn(3, 3, 9, dtype=torch.float64)
    assert_close_rel(a(A, species), plain_message(b, A, species), TOL[torch.float64], "m")
    exact = Contraction(2, "1o", 2, 2, 3).double()
    a.monomials_2, a.U_sym_2 = exact.monomials_2, exact.U_sym_2  # stale fold
    assert (a(A, species) - plain_message(b, A, species)).abs().max() > 1e-3
