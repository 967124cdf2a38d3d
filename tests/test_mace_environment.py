"""Run the comparisons with the official implementation inside the second environment ``.venv-mace``.

mace-torch 0.3.16 pins e3nn 0.4.4, so it lives in its own virtual environment (``make setup-mace``). This test
fails loudly — it never skips — when that environment or mace-torch is missing.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MACE_PYTHON = Path(os.environ.get("MINIMACE_MACE_PYTHON", ROOT / ".venv-mace" / "bin" / "python"))


def test_mace_environment_has_mace_torch_0_3_16():
    assert MACE_PYTHON.exists(), f"{MACE_PYTHON} not found: run `make setup-mace` (or set MINIMACE_MACE_PYTHON)"
    out = subprocess.run(
        [str(MACE_PYTHON), "-c", "import mace, e3nn; from mace import __version__ as v; print(v, e3nn.__version__)"],
        capture_output=True, text=True, check=False,
    )
    assert out.returncode == 0, f"mace-torch does not import in {MACE_PYTHON}:\n{out.stderr}"
    assert out.stdout.split()[0] == "0.3.16", out.stdout


@pytest.mark.mace
def test_comparisons_with_mace_torch_pass():
    targets = [str(p) for p in sorted((ROOT / "tests" / "mace").glob("test_*.py"))]
    targets += [str(p) for p in sorted((ROOT / "notebooks").glob("08_*.ipynb"))]
    assert targets, "no comparison tests found in tests/mace/"
    cmd = [str(MACE_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", *targets]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    sys.stdout.write(out.stdout[-5000:])
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-20000:]}\n{out.stderr[-5000:]}"
