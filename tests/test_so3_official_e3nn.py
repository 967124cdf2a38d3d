"""minimace's so3 against e3nn 0.4.4, the version pinned by the official implementation (mace-torch 0.3.16).

It lives in the second environment ``.venv-mace``, so the comparison runs there in a subprocess.
Measured facts this test pins down (they matter for loading weights of the official implementation):

- spherical harmonics: identical (the same polynomials);
- Wigner-3j: identical for every triple with l1 + l2 + l3 even — the only ones a tensor product between
  natural-parity irreps (0e, 1o, 2e, 3o, ...) such as MACE's can use; for odd l1 + l2 + l3 e3nn 0.4.4 ships
  stored tensors whose overall sign differs from e3nn >= 0.5 (and minimace) for some triples, e.g. (1, 2, 2).
  The sign of a 3j tensor is a convention; both are invariant with norm 1.
"""

import os
import subprocess
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACE_PYTHON = Path(os.environ.get("MINIMACE_MACE_PYTHON", ROOT / ".venv-mace" / "bin" / "python"))

SCRIPT = textwrap.dedent("""
    import itertools, warnings
    warnings.filterwarnings("ignore")
    import mace  # noqa: F401  (must be imported before e3nn.o3 in this environment)
    import e3nn, torch
    from e3nn import o3
    from minimace.so3 import spherical_harmonics, wigner_3j
    assert e3nn.__version__ == "0.4.4", e3nn.__version__
    x = torch.randn(200, 3, dtype=torch.float64)
    sh = (spherical_harmonics(6, x) - o3.spherical_harmonics(list(range(7)), x, True, normalization="component"))
    print("sh", sh.abs().max().item())
    even, odd_same, odd_flipped = 0.0, 0, 0
    for t in itertools.product(range(5), repeat=3):
        if abs(t[0] - t[1]) <= t[2] <= t[0] + t[1]:
            ours, ref = wigner_3j(*t), o3.wigner_3j(*t, dtype=torch.float64)
            if sum(t) % 2 == 0:
                even = max(even, (ours - ref).abs().max().item())
            elif (ours - ref).abs().max() < 1e-13:
                odd_same += 1
            else:
                assert (ours + ref).abs().max() < 1e-13, (t, "differs by more than a sign")
                odd_flipped += 1
    print("even", even)
    print("odd", odd_same, odd_flipped)
""")


def test_so3_against_e3nn_0_4_4_of_the_official_implementation():
    assert MACE_PYTHON.exists(), f"{MACE_PYTHON} not found: run `make setup-mace` (or set MINIMACE_MACE_PYTHON)"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([str(MACE_PYTHON), "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    assert float(lines["sh"]) < 1e-12
    assert float(lines["even"]) < 1e-14  # every triple a natural-parity tensor product can use: identical
    same, flipped = map(int, lines["odd"].split())
    assert same + flipped > 0 and flipped > 0  # the documented sign convention difference is still there
