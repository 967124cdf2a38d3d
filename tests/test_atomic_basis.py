"""Atomic basis A_i (MACE Eq. 8): tensor products against e3nn, equivariance, neighbour permutations."""

import pytest
import torch
from e3nn import o3

from minimace.atomic_basis import AtomicBasis, ConvTensorProduct, ElementLinear, scatter_sum
from minimace.one_particle import EdgeEmbedding
from minimace.testing import assert_equivariant

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
A_IRREPS = "4x0e+4x1o+4x2e+4x3o"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("irreps_in", ["4x0e", "4x0e+4x1o+4x2e"])
def test_conv_tensor_product_equals_e3nn_uvu(dtype, irreps_in):
    tp = ConvTensorProduct(irreps_in, 3, A_IRREPS).to(dtype)
    # the output blocks are sorted by irrep as e3nn sorts them (stable)
    unsorted = o3.Irreps([(tp.irreps_in1[i].mul, (ir.l, ir.p)) for i, _, ir in tp.paths])
    assert str(unsorted.sort().irreps) == str(tp.irreps_out)
    instructions = [(i, l2, k, "uvu", True) for k, (i, l2, _) in enumerate(tp.paths)]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn stores its 3j buffers in the default dtype
    try:
        ref = o3.TensorProduct(irreps_in, o3.Irreps.spherical_harmonics(3), str(tp.irreps_out), instructions,
                               shared_weights=False, internal_weights=False).to(dtype)
    finally:
        torch.set_default_dtype(previous)
    assert ref.weight_numel == tp.weight_numel
    n = 6
    x = torch.randn(n, tp.irreps_in1.dim, dtype=dtype)
    Y = torch.randn(n, 16, dtype=dtype)
    w = torch.randn(n, tp.weight_numel, dtype=dtype)
    torch.testing.assert_close(tp(x, Y, w), ref(x, Y, w), atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_element_linear_equals_e3nn_fully_connected_tp(dtype):
    irreps_in, irreps_out, n_el = "3x0e+2x1o+2x2e", "4x0e+3x1o+1x2e", 3
    ours = ElementLinear(irreps_in, n_el, irreps_out).to(dtype)
    ref = o3.FullyConnectedTensorProduct(irreps_in, f"{n_el}x0e", irreps_out).to(dtype)
    assert ref.weight.numel() == ours.weight.numel()
    with torch.no_grad():
        ref.weight.copy_(ours.weight)
    species = torch.tensor([0, 2, 1, 1, 0, 2])
    x = torch.randn(6, ours.irreps_in.dim, dtype=dtype)
    onehot = torch.nn.functional.one_hot(species, n_el).to(dtype)
    torch.testing.assert_close(ours(x, species), ref(x, onehot), atol=TOL[dtype], rtol=TOL[dtype])


def test_scatter_sum():
    src = torch.arange(12.0).reshape(6, 2)
    out = scatter_sum(src, torch.tensor([0, 2, 0, 2, 2, 1]), 4)
    expected = torch.tensor([[4.0, 6.0], [10.0, 11.0], [16.0, 19.0], [0.0, 0.0]])
    assert torch.equal(out, expected)


def small_system(dtype, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    positions = 1.5 * torch.randn(n, 3, generator=g, dtype=dtype)
    edge_index = torch.tensor([[i, j] for i in range(n) for j in range(n) if i != j]).T
    species = torch.randint(0, 3, (n,), generator=g)
    return positions, species, edge_index


def make_basis(dtype, node_irreps, first_layer):
    torch.manual_seed(0)
    basis = AtomicBasis(node_irreps, 3, A_IRREPS, 6, [8, 8], 3.0, 3, first_layer).to(dtype)
    emb = EdgeEmbedding(4.0, 6, 5, 3).to(dtype)

    def A_of(positions, h, species, edge_index):
        Y, radial = emb(positions[edge_index[1]] - positions[edge_index[0]])
        return basis(h, species, Y, radial, edge_index)

    return A_of


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("node_irreps,first", [("4x0e", True), ("4x0e+4x1o", False)])
def test_atomic_basis_is_equivariant_and_permutation_invariant(dtype, node_irreps, first):
    A_of = make_basis(dtype, node_irreps, first)
    positions, species, edge_index = small_system(dtype)
    from minimace.so3 import Irreps

    h = torch.randn(positions.shape[0], Irreps(node_irreps).dim, dtype=dtype)
    assert_equivariant(A_of, (positions, h, species, edge_index), ("cartesian_points", node_irreps, None, None),
                       A_IRREPS, atoms_in=("atoms", "atoms", "atoms", "atom_index"), atoms_out="atoms")


def test_atomic_basis_equivariance_check_fails_on_wrong_edge_vector():
    """Negative control: the unit vector squared breaks rotation equivariance and must be caught."""
    A_of = make_basis(torch.float64, "4x0e", True)
    positions, species, edge_index = small_system(torch.float64)
    h = torch.randn(positions.shape[0], 4, dtype=torch.float64)

    def broken(pos, h, species, edge_index):
        return A_of(pos**2, h, species, edge_index)

    with pytest.raises(AssertionError):
        assert_equivariant(broken, (positions, h, species, edge_index), ("cartesian_points", "4x0e", None, None),
                           A_IRREPS, tests=("rotation",))


def test_atomic_basis_sums_over_neighbours():
    """A_i depends on each neighbour j only through edge (i, j): dropping an edge changes only A_i."""
    A_of = make_basis(torch.float64, "4x0e", True)
    positions, species, edge_index = small_system(torch.float64)
    h = torch.randn(positions.shape[0], 4, dtype=torch.float64)
    A = A_of(positions, h, species, edge_index)
    keep = torch.ones(edge_index.shape[1], dtype=torch.bool)
    keep[3] = False
    i = int(edge_index[0, 3])
    A2 = A_of(positions, h, species, edge_index[:, keep])
    changed = (A2 - A).abs().amax(dim=1) > 1e-12
    assert changed.tolist() == [k == i for k in range(positions.shape[0])]
