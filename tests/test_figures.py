"""minimace.figures: the figures are drawn from the numbers the package computes, and regenerate byte-identically."""

from pathlib import Path

import math

import matplotlib
import matplotlib.image
import numpy as np
import pytest
import torch
from PIL import Image

from minimace import figures
from minimace.figures import (ace_features_example, ace_features_figure, receptive_field_experiment,
                              receptive_field_figure)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results():
    return receptive_field_experiment(dtype=torch.float64)


def figure_text(fig):
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts) + "\n".join(ax.get_title() for ax in fig.axes)


def test_figure_shows_the_computed_numbers(results, tmp_path):
    path = tmp_path / "rf.png"
    fig = receptive_field_figure(path, results=results)
    text = figure_text(fig)
    dE = results["dE_i"]
    assert f"{dE['MACE T=2']:.2e}" in text and f"{dE['ACE 2r_c']:.2e}" in text
    assert text.count("0 (exactly)") == 3  # MACE T=1, MACE without j, ACE r_c
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_negative_control_other_numbers_are_not_shown(results, tmp_path):
    """The text check above is not vacuous: a figure of other results shows other numbers."""
    changed = dict(results, dE_i=dict(results["dE_i"], **{"MACE T=2": 1.234e-3}))
    text = figure_text(receptive_field_figure(None, results=changed))
    assert f"{results['dE_i']['MACE T=2']:.2e}" not in text and "1.23e-03" in text


def test_main_writes_every_figure(tmp_path, monkeypatch, results):
    monkeypatch.setattr(figures, "receptive_field_experiment", lambda: results)
    assert figures.main([str(tmp_path)]) == 0
    for name in ("mpnn_ace.png", "ace_features.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_committed_figure_exists():
    path = REPO / "figures" / "mpnn_ace.png"
    assert path.exists(), "run `python -m minimace.figures`"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ figures/ace_features.png
@pytest.fixture(scope="module")
def example():
    return ace_features_example()


def test_ace_example_is_the_ace_pipeline(example):
    """A = Σ_j φ_j; ν = 1 is A_00, ν = 2 the power spectrum Σ_m A_lm² / √(2l+1), ν = 3 (0,0,0) is A_00³."""
    phi, A, lmax = example["phi"], example["A"], example["lmax"]
    assert phi.shape == (len(example["neighbours"]), (lmax + 1) ** 2)
    assert np.all(np.linalg.norm(example["r_ij"], axis=1) < example["r_c"])
    np.testing.assert_allclose(A, phi.sum(0), rtol=0, atol=1e-14)
    np.testing.assert_allclose(example["B"][1], [A[0]], rtol=1e-13)
    power = [(A[l * l:(l + 1) ** 2] ** 2).sum() / math.sqrt(2 * l + 1) for l in range(lmax + 1)]
    np.testing.assert_allclose(example["B"][2], power, rtol=1e-12)
    assert example["labels"][3][0] == "(0,0,0)" and abs(example["B"][3][0] - A[0] ** 3) < 1e-12
    assert example["labels"][3] == ["(0,0,0)", "(0,1,1)", "(0,2,2)", "(1,1,2)", "(2,2,2)"]


def test_ace_figure_shows_the_computed_numbers(example, tmp_path):
    fig = ace_features_figure(tmp_path / "ace.png", example=example)
    text = figure_text(fig)
    for nu in (1, 2, 3):
        for v in example["B"][nu]:
            assert f"{v:+.4f}" in text
    assert f"{example['phi'][1, 2]:+.2f}" in text and f"{example['A'][4]:+.2f}" in text
    image = matplotlib.image.imread(tmp_path / "ace.png")
    assert image.shape[0] > 800 and image.shape[1] > 1200 and image[..., :3].std() > 0.05


def test_ace_figure_negative_control(example):
    """The figure draws the numbers it is given: other B-values, other bars (the check above is not vacuous)."""
    changed = dict(example, B={**example["B"], 2: example["B"][2] + 0.5})
    text = figure_text(ace_features_figure(None, example=changed))
    old, new = example["B"][2][1], example["B"][2][1] + 0.5
    assert f"(bar: {new:+.4f})" in text and f"(bar: {old:+.4f})" not in text


def test_ace_figure_regenerates_byte_identically(tmp_path):
    """Two runs give the same bytes, and the same as the committed file on the matplotlib version that wrote it."""
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    ace_features_figure(a)
    ace_features_figure(b)
    assert a.read_bytes() == b.read_bytes()
    committed = REPO / "figures" / "ace_features.png"
    assert committed.exists(), "run `python -m minimace.figures`"
    software = Image.open(committed).info.get("Software", "")
    if f"version{matplotlib.__version__}," not in software:
        pytest.skip(f"figures/ace_features.png was written by {software!r}, "
                    f"this is matplotlib {matplotlib.__version__}")
    assert committed.read_bytes() == a.read_bytes(), \
        "figures/ace_features.png is stale: run `python -m minimace.figures`"
