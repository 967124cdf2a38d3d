"""minimace.figures: the receptive-field figure is drawn from the numbers the package computes."""

from pathlib import Path

import matplotlib.image
import pytest
import torch

from minimace import figures
from minimace.figures import receptive_field_experiment, receptive_field_figure

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
    assert (tmp_path / "mpnn_ace.png").stat().st_size > 10_000


def test_committed_figure_exists():
    path = REPO / "figures" / "mpnn_ace.png"
    assert path.exists(), "run `python -m minimace.figures`"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
