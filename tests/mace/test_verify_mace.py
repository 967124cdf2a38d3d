"""``minimace.testing.verify`` on mace-torch's own ASE calculator (``MACECalculator``), in ``.venv-mace``.

A small mace-torch model is built here (its own random initialisation, no download), so the suite checks an
implementation that is not minimace's; the same model converted with ``from_mace_torch`` must pass too, and a
mace-torch model file must load through ``minimace verify MODEL STRUCTURE``.
"""

import mace  # noqa: F401  (must be imported before e3nn.o3)
import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from e3nn import o3
from mace.calculators import MACECalculator
from mace.modules import RealAgnosticInteractionBlock, RealAgnosticResidualInteractionBlock, ScaleShiftMACE

from minimace.testing import CHECKS, verify


def mace_model(dtype):
    """Built under ``dtype`` as torch's default, as mace-torch's training does: a model built in float32 and cast
    to float64 keeps float32-accurate coupling coefficients, and the suite sees it (reflection errors ~1e-10)."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model = _build()
    finally:
        torch.set_default_dtype(default)
    return model.to(dtype)


def _build():
    return ScaleShiftMACE(
        r_max=4.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=2,
        interaction_cls=RealAgnosticResidualInteractionBlock, interaction_cls_first=RealAgnosticInteractionBlock,
        num_interactions=2, num_elements=3, hidden_irreps=o3.Irreps("8x0e+8x1o"), MLP_irreps=o3.Irreps("8x0e"),
        atomic_energies=np.array([-13.6, -2041.9, -150.0]), avg_num_neighbors=10.0, atomic_numbers=[1, 8, 14],
        correlation=2, gate=torch.nn.functional.silu, radial_MLP=[16, 16], atomic_inter_scale=20.0,
        atomic_inter_shift=0.0,
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mace_calculator_passes(dtype):
    calc = MACECalculator(models=mace_model(getattr(torch, dtype)), device="cpu", default_dtype=dtype)
    report = verify(calc, bulk("Si", "diamond", a=5.43, cubic=True))
    assert report.dtype == dtype, report                  # read from the calculator
    assert set(report.results) == set(CHECKS)             # the cutoff comes from calc.r_max
    assert report.passed, report
    assert verify(calc, molecule("H2O")).passed


def test_mace_torch_module_is_converted_and_passes():
    report = verify(mace_model(torch.float64), molecule("H2O"), checks=["rotation", "reflection", "forces_gradient"])
    assert report.potential == "ScaleShiftMACE" and report.passed, report


def test_a_broken_mace_calculator_fails_forces_gradient():
    class Scaled(MACECalculator):
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            self.results["forces"] = 1.01 * self.results["forces"]

    calc = Scaled(models=mace_model(torch.float64), device="cpu", default_dtype="float64")
    report = verify(calc, molecule("H2O"), checks=["rotation", "forces_gradient"])
    assert report.failed == ["forces_gradient"], report


def test_cli_verifies_a_mace_torch_model_file(tmp_path, capsys):
    import ase.io

    from minimace.cli import main

    torch.save(mace_model(torch.float64), tmp_path / "small.model")
    ase.io.write(tmp_path / "water.xyz", molecule("H2O"))
    status = main(["verify", str(tmp_path / "small.model"), str(tmp_path / "water.xyz"), "--checks",
                   "rotation,reflection,forces_gradient"])
    assert status == 0, capsys.readouterr()
    assert "all checks passed" in capsys.readouterr().out
