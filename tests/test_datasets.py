"""The shared data folder, the bundled GFN2-xTB set and the rMD17 download helper (no network)."""

import io
import tarfile

import numpy as np
import pytest
from ase import units

from minimace.data import DataError, is_isolated_atom, read_configurations
from minimace.datasets import (
    SHARED,
    bundled,
    bundled_dir,
    bundled_e0s,
    data_dir,
    download_rmd17,
    load_shared,
    rmd17_split_indices,
    shared_e0s,
)


def test_data_dir_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIMACE_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.setenv("MINIMACE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="MINIMACE_DATA"):
        data_dir()


def test_where_data_sets_are_looked_for(monkeypatch, tmp_path):
    """``$MINIMACE_DATA`` alone when set; else ../shared/data beside the repository, then the download cache."""
    from minimace import datasets

    monkeypatch.setattr(datasets, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setenv("MINIMACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIMACE_DATA", raising=False)
    shared, cache = tmp_path / "shared" / "data", tmp_path / "cache" / "data"
    assert datasets.data_roots() == [shared, cache]
    with pytest.raises(DataError, match=r"data set botnet_3bpa not found in .* fetch with `minimace download botnet_3bpa`"):
        datasets.require("botnet_3bpa")
    with pytest.raises(DataError, match=r"botnet_3bpa/train_300K.xyz .*`minimace download botnet_3bpa`"):
        load_shared("botnet_3bpa")
    for relative in datasets.dataset_files("botnet_3bpa"):  # what a download leaves in the cache
        (cache / relative).parent.mkdir(parents=True, exist_ok=True)
        (cache / relative).write_text("")
    assert datasets.require("botnet_3bpa") == cache and data_dir() == cache
    with pytest.raises(DataError, match="data set rmd17_aspirin not found"):  # negative control: another set
        datasets.require("botnet_3bpa", "rmd17_aspirin")
    monkeypatch.setenv("MINIMACE_DATA", str(tmp_path / "mine"))
    assert datasets.data_roots() == [tmp_path / "mine"]
    with pytest.raises(DataError, match="MINIMACE_DATA="):
        datasets.require("botnet_3bpa")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.shared_data(n)) for n in sorted(SHARED)])
def test_every_shared_dataset_loads_with_its_keys(shared, name):
    configs = load_shared(name, "train", index=":4")
    assert configs and all(c.energy is not None and c.forces is not None for c in configs)
    assert not any(is_isolated_atom(c) for c in configs)
    e0s = shared_e0s(name)
    assert set(np.concatenate([c.atomic_numbers for c in configs]).tolist()) <= set(e0s)
    for split in SHARED[name].splits:  # every declared file exists
        assert (shared / SHARED[name].folder / SHARED[name].splits[split]).is_file()


@pytest.mark.shared_data("botnet_ethanol", "rmd17_aspirin", "botnet_3bpa", "si_gap18_tiny")
def test_shared_e0s_match_provenance(shared):
    # values quoted in the PROVENANCE.md files
    assert shared_e0s("botnet_ethanol")[8] == pytest.approx(-2035.570980959, abs=1e-8)
    assert shared_e0s("rmd17_aspirin") == shared_e0s("botnet_ethanol")
    assert shared_e0s("botnet_3bpa")[7] == pytest.approx(-1484.981456857, abs=1e-8)
    assert shared_e0s("si_gap18_tiny") == {14: pytest.approx(-158.54496821, abs=1e-8)}


@pytest.mark.shared_data("botnet_ethanol")
def test_energy_only_splits(shared):
    dimers = load_shared("botnet_ethanol", "test_dimers", index=":3")
    assert all(c.energy is not None and c.forces is None for c in dimers)


def test_unknown_names():  # raised before any file is looked for: runs without the data
    with pytest.raises(DataError, match="known:"):
        load_shared("md22")
    with pytest.raises(DataError, match="splits:"):
        load_shared("rmd17_aspirin", "valid")


# ---------------------------------------------------------------------------------------------- bundled


def test_bundled_files_are_small_and_documented():
    files = sorted(bundled_dir().glob("*"))
    assert {f.name for f in files} >= {"train.xyz", "test.xyz", "water_box.xyz", "isolated_atoms.xyz", "PROVENANCE.md"}
    assert sum(f.stat().st_size for f in files) < 2_000_000
    assert "GFN2-xTB" in (bundled_dir() / "PROVENANCE.md").read_text()


def test_bundled_labels_are_consistent():
    e0s = bundled_e0s()
    assert set(e0s) == {1, 6, 8}
    train, test, boxes = bundled("train"), bundled("test"), bundled("water_box")
    assert len(train) >= 200 and len(test) >= 50 and len(boxes) >= 10
    for config in train + test:
        # atomisation energies of a few eV per atom: the E0s belong to the same method
        per_atom = (config.energy - sum(e0s[int(z)] for z in config.atomic_numbers)) / len(config)
        assert -8.0 < per_atom < -2.0, config.source
        assert np.abs(config.forces).max() < 30.0
    # train and test come from different MD runs
    assert not {c.positions.tobytes() for c in train} & {c.positions.tobytes() for c in test}
    for box in boxes:
        assert box.pbc.all() and box.stress.shape == (3, 3)
        np.testing.assert_allclose(box.stress, box.stress.T, atol=1e-10)
    assert np.ptp([b.stress[0, 0] for b in boxes]) > 1e-3  # strained boxes: stress varies


@pytest.mark.shared_data("solvent_xtb")
def test_bundled_and_solvent_xtb_e0s_agree(shared):
    """Two independent GFN2-xTB sources (tblite here, xtb-python there) give the same atoms."""
    ours, theirs = bundled_e0s(), shared_e0s("solvent_xtb")
    for z in ours:
        assert ours[z] == pytest.approx(theirs[z], abs=1e-3)


# ---------------------------------------------------------------------------------------------- rMD17


def fake_rmd17(path, molecule="ethanol", n=5):
    """A tiny archive with the layout and units (kcal/mol) of the real rmd17.tar.bz2."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        nuclear_charges=np.array([6, 6, 8, 1, 1, 1, 1, 1, 1]),
        coords=rng.normal(size=(n, 9, 3)) * 1.5,
        energies=-97000.0 + rng.normal(size=n),
        forces=rng.normal(size=(n, 9, 3)) * 10,
    )
    members = {f"rmd17/npz_data/rmd17_{molecule}.npz": buffer.getvalue()}
    members["rmd17/splits/index_train_01.csv"] = b"3\n0\n4\n"
    members["rmd17/splits/index_test_01.csv"] = b"1\n2\n"
    with tarfile.open(path, "w:bz2") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return np.load(io.BytesIO(members[f"rmd17/npz_data/rmd17_{molecule}.npz"]))


def test_download_rmd17_converts_and_caches(tmp_path):
    source = tmp_path / "remote.tar.bz2"
    raw = fake_rmd17(source)
    cache = tmp_path / "cache"
    path = download_rmd17("ethanol", cache, url=source.as_uri())  # file:// URL: the download path, offline
    assert (cache / "rmd17.tar.bz2").is_file() and not list(cache.glob("*.part"))
    configs = read_configurations(path)
    assert len(configs) == 5
    np.testing.assert_allclose([c.energy for c in configs], raw["energies"] * units.kcal / units.mol, rtol=1e-12)
    np.testing.assert_allclose(configs[2].forces, raw["forces"][2] * 0.0433641, rtol=1e-5)  # kcal/mol/Å → eV/Å
    np.testing.assert_allclose(configs[2].positions, raw["coords"][2], atol=1e-8)
    source.unlink()  # later calls read the cache only
    assert download_rmd17("ethanol", cache, url=source.as_uri()) == path
    train, test = rmd17_split_indices(1, cache)
    assert train.tolist() == [3, 0, 4] and test.tolist() == [1, 2]


def test_download_rmd17_errors(tmp_path):
    with pytest.raises(DataError, match="unknown rMD17 molecule"):
        download_rmd17("water", tmp_path)
    with pytest.raises(DataError, match="could not download"):
        download_rmd17("ethanol", tmp_path / "c1", url=(tmp_path / "missing.tar.bz2").as_uri())
    assert not list((tmp_path / "c1").glob("*"))  # nothing half-written in the cache
    (tmp_path / "c2").mkdir()
    (tmp_path / "c2" / "rmd17.tar.bz2").write_bytes(b"not an archive")
    with pytest.raises(DataError, match="cannot read the rMD17 archive"):
        download_rmd17("ethanol", tmp_path / "c2")
    fake_rmd17(tmp_path / "c3.tar.bz2", molecule="aspirin")
    (tmp_path / "c3").mkdir()
    (tmp_path / "c3.tar.bz2").rename(tmp_path / "c3" / "rmd17.tar.bz2")
    with pytest.raises(DataError, match="no member ending in 'npz_data/rmd17_ethanol.npz'"):
        download_rmd17("ethanol", tmp_path / "c3")
