"""Saved mace-torch model files are read safely: weights only, an explicit allow-list, no code from the file.

Runs in the second environment: ``.venv-mace/bin/python -m pytest tests/mace -q``.
Every malicious file here really runs its payload when loaded the unsafe way (``weights_only=False``):
that control shows the payload is live, so its absence under minimace's loader means something.
"""

import builtins
import contextlib
import os

import mace  # noqa: F401  (must be imported before e3nn.o3)
import numpy as np
import pytest
import torch
import torch.fx
from ase.build import molecule
from e3nn import o3
from mace import modules as mace_modules

from minimace.interop import (
    UnsafeModelFileError,
    compare_with_mace_torch,
    from_mace_torch,
    from_mace_torch_file,
    load_mace_torch_file,
)


def small_mace(interaction_cls=mace_modules.RealAgnosticResidualInteractionBlock):
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return mace_modules.ScaleShiftMACE(
            atomic_inter_scale=1.3, atomic_inter_shift=0.2, r_max=4.0, num_bessel=6, num_polynomial_cutoff=5,
            max_ell=2, interaction_cls=interaction_cls, interaction_cls_first=mace_modules.RealAgnosticInteractionBlock,
            num_interactions=2, num_elements=3, hidden_irreps=o3.Irreps("4x0e+4x1o"), MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=np.array([-13.6, -1029.8, -2041.9]), avg_num_neighbors=4.0, atomic_numbers=[1, 6, 8],
            correlation=2, gate=torch.nn.functional.silu, radial_MLP=[8, 8],
        )
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    mm = small_mace()
    path = tmp_path_factory.mktemp("models") / "small.model"
    torch.save(mm, path)  # what mace_run_train writes
    return mm, path


def test_saved_model_converts_like_the_model_object(saved):
    mm, path = saved
    from_file, from_object = from_mace_torch_file(path), from_mace_torch(mm)
    from_path = from_mace_torch(str(path))  # the same function accepts a path
    atoms = [molecule("CH3CH2OH")]
    for model in (from_file, from_path):
        for (name, a), (_, b) in zip(model.state_dict().items(), from_object.state_dict().items()):
            assert torch.equal(a, b), name
        result = compare_with_mace_torch(mm, model, atoms)
        assert result["energy"] < 1e-12 and result["forces"] < 1e-10


def test_loaded_model_runs_no_generated_code(saved):
    """The GraphModules and TorchScript of the file are not restored: the mace object cannot run."""
    _, path = saved
    loaded = load_mace_torch_file(path)
    contraction = loaded.products[0].symmetric_contractions.contractions[0]
    assert type(contraction.graph_opt_main).__name__ == "_InertGraphModule"
    with pytest.raises(RuntimeError, match="weights only"):
        contraction.graph_opt_main(torch.zeros(1))


class _RunsShell:
    """Pickles as a call to os.system: a classic malicious pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _OpensFile:
    """Pickles as builtins.open(marker, "w")."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


class _EvilGraphModule:
    """Pickles as a torch.fx GraphModule whose Python source writes a file when it is rebuilt."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        code = f"open({self.marker!r}, 'w').write('pwned')\ndef forward(self, x):\n    return x\n"
        return (torch.fx.graph_module.reduce_graph_module, ({"_code": code, "_graphmodule_cls_name": "GM"}, ""))


PAYLOADS = [_RunsShell, _OpensFile, _EvilGraphModule]


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p.__name__ for p in PAYLOADS])
def test_malicious_file_does_not_run(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.model"
    mm = small_mace()
    torch.save({"model": mm, "extra": payload(marker)}, path)
    with pytest.raises((UnsafeModelFileError, NotImplementedError)) as err:
        from_mace_torch_file(path)
    assert not marker.exists(), "the payload ran"
    if payload is not _EvilGraphModule:
        assert isinstance(err.value, UnsafeModelFileError)
        assert ("system" in str(err.value)) or ("open" in str(err.value)), str(err.value)
    else:  # the GraphModule is replaced by an inert module; what remains is not a mace model
        assert "model class" in str(err.value)
    # control: the unsafe load really runs the payload (whatever it does afterwards)
    with contextlib.suppress(Exception):
        torch.load(path, weights_only=False)
    assert marker.exists()


def test_model_with_blocks_outside_the_allow_list_is_refused(tmp_path):
    mm = small_mace(interaction_cls=mace_modules.RealAgnosticDensityResidualInteractionBlock)
    path = tmp_path / "density.model"
    torch.save(mm, path)
    with pytest.raises(UnsafeModelFileError, match="RealAgnosticDensityResidualInteractionBlock"):
        from_mace_torch_file(path)
    with pytest.raises(NotImplementedError, match="interaction_cls"):  # the object itself: a clear refusal too
        from_mace_torch(mm)


def test_torchscript_archive_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "model_compiled.model"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)  # what mace's *_compiled.model files are
    with pytest.raises(NotImplementedError, match="TorchScript"):
        from_mace_torch_file(path)
