"""Test-suite settings shared by tests/ and notebooks/ (nbval).

- Notebooks run in quick mode (``MINIMACE_QUICK=1``) so the whole suite fits the CPU budget of CI.
- ``MINIMACE_DATA`` defaults to the first existing folder of ``minimace.datasets.data_roots()`` (``../shared/data``
  beside the checkout, then the user cache that ``minimace download`` fills), else to ``../shared/data``.
- Tests and notebooks that need the official implementation (mace-torch 0.3.16, which pins e3nn 0.4.4) live in
  ``tests/mace/`` and ``notebooks/08_*``; they are collected only in the second environment ``.venv-mace``.
  In the main environment, ``tests/test_mace_environment.py`` runs them there, so one ``pytest`` runs everything.
"""

import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("MINIMACE_QUICK", "1")
if "MINIMACE_DATA" not in os.environ:
    from minimace.datasets import data_roots

    os.environ["MINIMACE_DATA"] = str(next((p for p in data_roots() if p.is_dir()), ROOT.parent / "shared" / "data"))
os.environ.setdefault("MPLBACKEND", "Agg")

if importlib.util.find_spec("mace") is None:
    collect_ignore = ["tests/mace"]
    collect_ignore_glob = ["notebooks/08_*"]
