"""``minimace download``: pinned files, SHA-256 checked, cached atomically — against a local server on 127.0.0.1 only.

Two kinds of tests: small files generated here with sums computed here (run everywhere), and the real files of the
shared data folder served as a mirror (need that folder: skipped on a fresh clone, a failure under CI=true).
"""

import contextlib
import dataclasses
import hashlib
import http.server
import io
import re
import shutil
import tarfile
import threading
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import molecule

from minimace import datasets
from minimace.cli import main
from minimace.data import DataError
from minimace.datasets import REMOTE, SHARED, Remote, SharedDataset, dataset_files, download, load_shared, shared_e0s


@contextlib.contextmanager
def serve(folder):
    """An HTTP server on 127.0.0.1 (ephemeral port) serving ``folder``; yields (base URL, list of requested paths)."""
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list:
    """Files of a data folder that are not complete data files (temporary .part files)."""
    return [p for p in folder.rglob("*") if p.is_file() and p.name.endswith(".part")]


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A generated data set "toy" (3 labelled molecules + E0s) on a local mirror; MINIMACE_DATA is an empty folder."""
    mirror = tmp_path / "mirror" / "toy"
    mirror.mkdir(parents=True)
    frames = []
    for k, name in enumerate(("H2O", "CH4", "CH3OH")):
        atoms = molecule(name)
        atoms.info["energy"] = -10.0 * len(atoms) + k
        atoms.arrays["forces"] = np.random.default_rng(k).normal(size=(len(atoms), 3))
        frames.append(atoms)
    ase.io.write(mirror / "train.xyz", frames, format="extxyz")
    isolated = [molecule(s) for s in ("H", "C", "O")]
    for atoms, e in zip(isolated, (-13.6, -1029.8, -2041.9)):
        atoms.info.update(energy=e, config_type="IsolatedAtom")
    ase.io.write(mirror / "isolated.xyz", isolated, format="extxyz")
    monkeypatch.setitem(SHARED, "toy", SharedDataset("toy", {"train": "train.xyz"}, e0_file="toy/isolated.xyz"))
    for name in ("train.xyz", "isolated.xyz"):
        data = (mirror / name).read_bytes()
        remote = Remote("example/toy", "0" * 40, f"data/{name}", len(data), sha256(data))
        monkeypatch.setitem(REMOTE, f"toy/{name}", remote)
    data = tmp_path / "data"
    monkeypatch.setenv("MINIMACE_DATA", str(data))
    monkeypatch.delenv("MINIMACE_DOWNLOAD_URL", raising=False)
    return mirror.parent, data


# ---------------------------------------------------------------------------------------------- everywhere


def test_download_checks_caches_and_is_idempotent(toy):
    mirror, data = toy
    with serve(mirror) as (url, requested):
        assert download("toy", base_url=url, log=lambda *a: None) == data
        assert sorted(requested) == ["/toy/isolated.xyz", "/toy/train.xyz"]
        configs = load_shared("toy", "train")  # found where load_shared looks
        assert len(configs) == 3 and configs[2].energy == pytest.approx(-58.0)
        assert shared_e0s("toy") == pytest.approx({1: -13.6, 6: -1029.8, 8: -2041.9})
        assert download("toy", base_url=url, log=lambda *a: None) == data
        assert len(requested) == 2  # the second call downloads nothing
    assert (data / "toy" / "train.xyz").read_bytes() == (mirror / "toy" / "train.xyz").read_bytes()
    assert not leftovers(data)


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_a_bad_download_is_an_error_and_never_cached(toy, tmp_path, damage):
    mirror, data = toy
    good = (mirror / "toy" / "train.xyz").read_bytes()
    bad = good[:100] + b"X" + good[101:] if damage == "corrupted" else good[: len(good) // 2]
    (mirror / "toy" / "train.xyz").write_bytes(bad)
    with serve(mirror) as (url, _), pytest.raises(DataError) as error:
        download("toy", base_url=url, log=lambda *a: None)
    message = str(error.value)
    assert "toy/train.xyz" in message and f"SHA-256 {sha256(bad)}" in message and f"pinned {sha256(good)}" in message
    assert (f"{len(bad)} bytes, expected {len(good)}" in message) == (damage == "truncated")
    assert not (data / "toy" / "train.xyz").exists() and not leftovers(data)
    # negative control: the same call with the good file succeeds
    (mirror / "toy" / "train.xyz").write_bytes(good)
    with serve(mirror) as (url, _):
        download("toy", base_url=url, log=lambda *a: None)
    assert (data / "toy" / "train.xyz").read_bytes() == good


def test_missing_file_and_damaged_cache(toy):
    mirror, data = toy
    (mirror / "toy" / "isolated.xyz").unlink()
    with serve(mirror) as (url, _), pytest.raises(DataError, match=r"could not download toy/isolated.xyz .*404"):
        download("toy", base_url=url, log=lambda *a: None)
    assert not leftovers(data) and not (data / "toy" / "isolated.xyz").exists()
    # a file in the cache that does not match its sum is reported, not silently used or replaced
    (data / "toy" / "isolated.xyz").write_text("edited\n")
    with serve(mirror) as (url, _), pytest.raises(DataError, match=r"isolated.xyz: SHA-256 .* delete the file"):
        download("toy", base_url=url, log=lambda *a: None)
    with pytest.raises(DataError, match="unknown shared data set 'nope'"):
        download("nope")


def test_upstream_urls_and_an_archive_member(toy, monkeypatch, tmp_path):
    """Without a mirror the pinned URLs are used ({host}/{repo}/{commit}/{path}); a tar member is extracted."""
    mirror, data = toy
    upstream = tmp_path / "upstream"
    member = (mirror / "toy" / "isolated.xyz").read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("isolated.xyz")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    archive = buffer.getvalue()
    (upstream / "example/toy" / ("0" * 40) / "data").mkdir(parents=True)
    (upstream / "example/toy" / ("0" * 40) / "data" / "isolated.tar.gz").write_bytes(archive)
    shutil.copy(mirror / "toy" / "train.xyz", upstream / "example/toy" / ("0" * 40) / "data" / "train.xyz")
    monkeypatch.setitem(REMOTE, "toy/isolated.xyz", Remote(
        "example/toy", "0" * 40, "data/isolated.tar.gz", len(member), sha256(member), member="isolated.xyz",
        archive_size=len(archive), archive_sha256=sha256(archive)))
    with serve(upstream) as (url, requested):
        monkeypatch.setattr(datasets, "GITHUB_RAW", url)
        assert REMOTE["toy/train.xyz"].url == f"{url}/example/toy/{'0' * 40}/data/train.xyz"
        download("toy", log=lambda *a: None)
        assert sorted(requested) == [f"/example/toy/{'0' * 40}/data/{n}" for n in ("isolated.tar.gz", "train.xyz")]
    assert (data / "toy" / "isolated.xyz").read_bytes() == member
    assert not leftovers(data) and sorted(p.name for p in (data / "toy").iterdir()) == ["isolated.xyz", "train.xyz"]
    # negative control: an archive whose member differs from the pinned sum is refused, nothing is kept
    (data / "toy" / "isolated.xyz").unlink()
    monkeypatch.setitem(REMOTE, "toy/isolated.xyz", dataclasses.replace(REMOTE["toy/isolated.xyz"], sha256="0" * 64))
    with serve(upstream) as (url, _), pytest.raises(DataError, match=r"member isolated.xyz of .* does not match"):
        monkeypatch.setattr(datasets, "GITHUB_RAW", url)
        download("toy", log=lambda *a: None)
    assert not leftovers(data) and not (data / "toy" / "isolated.xyz").exists()


def test_cli_download_and_list(toy, capsys, monkeypatch):
    mirror, data = toy
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^{name}\s+\d+", out, re.M) for name in SHARED)
    with serve(mirror) as (url, _):
        monkeypatch.setenv("MINIMACE_DOWNLOAD_URL", url)  # the environment variable overrides the pinned URLs too
        assert main(["download", "toy", "--dir", str(data / "elsewhere")]) == 0
    assert (data / "elsewhere" / "toy" / "train.xyz").is_file()
    assert main(["download", "nope"]) == 2
    assert "unknown shared data set 'nope'" in capsys.readouterr().err


def test_every_shared_file_has_a_pinned_source():
    for name in SHARED:
        for relative in dataset_files(name):
            remote = REMOTE[relative]
            assert re.fullmatch(r"[0-9a-f]{40}", remote.commit) and re.fullmatch(r"[0-9a-f]{64}", remote.sha256)
            assert remote.url.startswith("https://raw.githubusercontent.com/") and remote.commit in remote.url
    assert set(REMOTE) == {f for name in SHARED for f in dataset_files(name)}


# ---------------------------------------------------------------------------------------------- real files


def test_pinned_sums_are_those_of_the_shared_files(shared):
    for relative, remote in REMOTE.items():
        data = (shared / relative).read_bytes()
        assert (sha256(data), len(data)) == (remote.sha256, remote.size), relative


def test_download_every_data_set_from_a_mirror_of_the_shared_folder(shared, tmp_path, monkeypatch):
    target = tmp_path / "data"
    monkeypatch.setenv("MINIMACE_DATA", str(target))
    with serve(shared) as (url, requested):
        for name in SHARED:
            download(name, base_url=url, log=lambda *a: None)
        assert len(requested) == len(REMOTE)
        for name in SHARED:
            monkeypatch.setenv("MINIMACE_DATA", str(shared))
            reference = shared_e0s(name), [c.energy for c in load_shared(name, "train", index=":8")]
            monkeypatch.setenv("MINIMACE_DATA", str(target))
            assert (shared_e0s(name), [c.energy for c in load_shared(name, "train", index=":8")]) == reference
            assert reference[1], name
            download(name, base_url=url, log=lambda *a: None)
        assert len(requested) == len(REMOTE)  # nothing downloaded twice
    assert not leftovers(target)


@pytest.mark.shared_data("botnet_3bpa")
def test_real_files_corrupted_or_truncated_on_the_mirror(shared, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared / "botnet_3bpa", mirror / "botnet_3bpa")
    good = (shared / "botnet_3bpa" / "train_300K.xyz").read_bytes()
    monkeypatch.setenv("MINIMACE_DATA", str(tmp_path / "data"))
    for bad in (good.replace(b"energy=-", b"energy=+", 1), good[: len(good) - 4096]):
        (mirror / "botnet_3bpa" / "train_300K.xyz").write_bytes(bad)
        with serve(mirror) as (url, _), pytest.raises(DataError, match=rf"botnet_3bpa/train_300K.xyz .*SHA-256 "
                                                                       rf"{sha256(bad)} .*pinned {sha256(good)}"):
            download("botnet_3bpa", base_url=url, log=lambda *a: None)
        assert not (tmp_path / "data" / "botnet_3bpa" / "train_300K.xyz").exists()
        assert not leftovers(tmp_path / "data")


@pytest.mark.shared_data("si_gap18_tiny")
def test_the_si_archive_member(shared, tmp_path, monkeypatch):
    """Si_tiny.xyz comes upstream inside a tar.gz: extracted from an archive of the shared copy, same bytes."""
    member = (shared / "si_gap18_tiny" / "Si_tiny.xyz").read_bytes()
    remote = REMOTE["si_gap18_tiny/Si_tiny.xyz"]
    folder = tmp_path / "upstream" / remote.repo / remote.commit / Path(remote.path).parent
    folder.mkdir(parents=True)
    with tarfile.open(folder / Path(remote.path).name, "w:gz") as tar:
        tar.add(shared / "si_gap18_tiny" / "Si_tiny.xyz", arcname=remote.member)
    archive = (folder / Path(remote.path).name).read_bytes()
    # the archive's bytes (gzip header, tar metadata) are not upstream's: its pin is replaced, the member's is not
    monkeypatch.setitem(REMOTE, "si_gap18_tiny/Si_tiny.xyz",
                        dataclasses.replace(remote, archive_sha256=sha256(archive), archive_size=len(archive)))
    monkeypatch.setenv("MINIMACE_DATA", str(tmp_path / "data"))
    with serve(tmp_path / "upstream") as (url, _):
        monkeypatch.setattr(datasets, "GITHUB_RAW", url)
        download("si_gap18_tiny", log=lambda *a: None)
    assert (tmp_path / "data" / "si_gap18_tiny" / "Si_tiny.xyz").read_bytes() == member
    assert shared_e0s("si_gap18_tiny") == {14: pytest.approx(-158.54496821, abs=1e-8)}
