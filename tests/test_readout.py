"""Readouts (MACE Eq. 13): linear / non-linear readout, E0, scale and shift."""

import math

import pytest
import torch

from minimace.radial import second_moment_constant
from minimace.readout import AtomicEnergies, LinearReadout, NonLinearReadout, ScaleShift
from minimace.testing import assert_equivariant

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_readout_uses_only_scalars_and_is_invariant(dtype):
    ro = LinearReadout("4x0e+4x1o").to(dtype)
    h = torch.randn(5, 16, dtype=dtype)
    torch.testing.assert_close(ro(h), h[:, :4] @ ro.linear.weight / 2.0, atol=TOL[dtype], rtol=TOL[dtype])
    assert_equivariant(ro, (h,), ("4x0e+4x1o",), "0e", tests=("rotation", "reflection"))
    with pytest.raises(AssertionError):  # negative control: declaring the input 4x0o+4x1o breaks parity
        assert_equivariant(ro, (h,), ("4x0o+4x1o",), "0e", tests=("reflection",))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nonlinear_readout_definition(dtype):
    ro = NonLinearReadout("6x0e", "3x0e", "silu").to(dtype)
    h = torch.randn(5, 6, dtype=dtype)
    c = second_moment_constant(torch.nn.functional.silu)
    hidden = c * torch.nn.functional.silu(h.double() @ ro.linear_1.weight.double().view(6, 3) / math.sqrt(6))
    expected = hidden @ ro.linear_2.weight.double() / math.sqrt(3)
    torch.testing.assert_close(ro(h).double(), expected, atol=TOL[dtype], rtol=TOL[dtype])
    with pytest.raises(ValueError):
        NonLinearReadout("6x0e", "3x1o", "silu")


@pytest.mark.parametrize("dtype", DTYPES)
def test_atomic_energies_and_scale_shift(dtype):
    E0 = AtomicEnergies([-13.6, -1029.8, -2041.9]).to(dtype)
    torch.testing.assert_close(E0(torch.tensor([2, 0, 0])), torch.tensor([-2041.9, -13.6, -13.6], dtype=dtype))
    ss = ScaleShift(2.0, -0.5).to(dtype)
    torch.testing.assert_close(ss(torch.tensor([1.0, 3.0], dtype=dtype)), torch.tensor([1.5, 5.5], dtype=dtype))
