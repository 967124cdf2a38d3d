"""One-particle basis: equivariant linear maps, chemical embedding, edge features (MACE Eq. 7–8)."""

import math

import pytest
import torch
from e3nn import o3

from minimace.one_particle import ChemicalEmbedding, EdgeEmbedding, IrrepsLinear
from minimace.radial import BesselBasis, PolynomialCutoff
from minimace.so3 import spherical_harmonics
from minimace.testing import assert_equivariant

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("irreps_in,irreps_out", [("5x0e+3x1o+2x2e", "4x0e+6x1o+3x2e"),
                                                  ("2x0e+3x1o+1x0e+2x1o", "3x1o+2x0e+1x3o")])
def test_irreps_linear_equals_e3nn_linear(dtype, irreps_in, irreps_out):
    torch.manual_seed(0)
    ours = IrrepsLinear(irreps_in, irreps_out).to(dtype)
    ref = o3.Linear(irreps_in, irreps_out).to(dtype)
    assert ours.weight.numel() == ref.weight.numel()
    with torch.no_grad():
        ref.weight.copy_(ours.weight)
    x = torch.randn(7, ours.irreps_in.dim, dtype=dtype)
    torch.testing.assert_close(ours(x), ref(x), atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_irreps_linear_is_equivariant(dtype):
    irreps_in, irreps_out = "3x0e+2x1o+2x2e+1x1e", "2x0e+3x1o+1x2e+2x1e"
    lin = IrrepsLinear(irreps_in, irreps_out).to(dtype)
    x = torch.randn(5, lin.irreps_in.dim, dtype=dtype)
    assert_equivariant(lin, (x,), (irreps_in,), irreps_out, tests=("rotation", "reflection"))


def test_equivariance_check_catches_a_wrong_parity():
    """Negative control: declaring the output 1e instead of 1o must fail under reflections."""
    lin = IrrepsLinear("2x1o", "2x1o").double()
    x = torch.randn(5, 6, dtype=torch.float64)
    with pytest.raises(AssertionError):
        assert_equivariant(lin, (x,), ("2x1o",), "2x1e", tests=("reflection",))


@pytest.mark.parametrize("dtype", DTYPES)
def test_chemical_embedding_is_linear_in_the_one_hot(dtype):
    emb = ChemicalEmbedding(4, 6).to(dtype)
    species = torch.tensor([0, 3, 1, 1, 2])
    onehot = torch.nn.functional.one_hot(species, 4).to(dtype)
    torch.testing.assert_close(emb(species), onehot @ emb.weight / 2.0, atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_embedding(dtype):
    emb = EdgeEmbedding(r_max=4.0, num_bessel=6, num_polynomial_cutoff=5, max_ell=3).to(dtype)
    v = torch.randn(10, 3, dtype=dtype) * 2
    Y, radial = emb(v)
    r = v.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(Y, spherical_harmonics(3, v), atol=TOL[dtype], rtol=TOL[dtype])
    expected = BesselBasis(4.0, 6).to(dtype)(r) * PolynomialCutoff(4.0, 5)(r)
    torch.testing.assert_close(radial, expected, atol=TOL[dtype], rtol=TOL[dtype])
    assert torch.all(radial[r[:, 0] >= 4.0] == 0)
    # l = 1 is sqrt(3) times the unit vector (component normalisation, e3nn's basis)
    torch.testing.assert_close(Y[:, 1:4], math.sqrt(3) * v / r, atol=TOL[dtype], rtol=TOL[dtype])
    assert_equivariant(lambda x: emb(x), (v,), ("cartesian_vectors",), ("0e+1o+2e+3o", "6x0e"),
                       tests=("rotation", "reflection"))
