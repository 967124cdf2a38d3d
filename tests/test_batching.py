"""Edge-budget batching: every structure exactly once per epoch (one process, several, from shards), the
budget is respected, and the loss is the same mean as with fixed batches."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minimace.data import edge_budget_batches, num_edges
from minimace.train import TrainConfig, epoch_batches, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_train as t  # noqa: E402  (tiny model and data shared with the training tests)


def assert_each_once(batches, order, n_edges, budget, world):
    """Every index of ``order`` in exactly one share; batches consecutive in the order of the epoch; no empty
    share; a batch exceeds the budget only when it holds one structure per process (or is the last of
    several processes, which takes the remainder)."""
    pos = {k: p for p, k in enumerate(order)}
    flat = [k for shares in batches for share in shares for k in share]
    assert sorted(flat) == sorted(order), "an index is missing or repeated"
    members = []
    for shares in batches:
        assert len(shares) == world and all(shares), "a process got no structure"
        assert all(share == sorted(share, key=pos.get) for share in shares), "a share is out of order"
        members.append(sorted(sum(shares, []), key=pos.get))
    assert sum(members, []) == list(order), "batches are not consecutive pieces of the epoch"
    for b, m in enumerate(members):
        last_of_several = b == len(members) - 1 and world > 1
        if len(m) > world and not last_of_several:
            assert sum(n_edges[k] for k in m) <= budget, f"batch {b} exceeds the budget"


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 500), min_size=3, max_size=60), budget=st.integers(1, 1500),
       world=st.integers(1, 3), seed=st.integers(0, 10))
def test_every_structure_once_within_the_budget(sizes, budget, world, seed):
    n_edges = np.array(sizes)
    order = np.random.default_rng(seed).permutation(len(sizes)).tolist()
    batches = edge_budget_batches(order, n_edges, budget, world)
    assert_each_once(batches, order, n_edges, budget, world)
    if world == 1:  # greedy: a batch closes only when the next structure would not fit
        for a, b in zip(batches[:-1], batches[1:]):
            assert sum(n_edges[k] for k in a[0]) + n_edges[b[0][0]] > budget


def test_the_checker_fails_on_broken_batches():
    n_edges, order = np.array([10, 20, 30, 40]), [3, 1, 0, 2]
    good = edge_budget_batches(order, n_edges, 50, 1)
    assert_each_once(good, order, n_edges, 50, 1)
    for broken in (good[:-1],  # a structure dropped
                   good + [good[0]],  # one seen twice
                   [[[3, 1, 0, 2]]],  # the budget ignored
                   [[[1, 3]], [[0, 2]]]):  # the order of the epoch not kept
        with pytest.raises(AssertionError):
            assert_each_once(broken, order, n_edges, 50, 1)
    with pytest.raises(AssertionError):  # an empty share
        assert_each_once([[[3, 1, 0, 2], []]], order, n_edges, 500, 2)


def test_balanced_shares_and_errors():
    shares = edge_budget_batches([0, 1, 2, 3], np.array([100, 10, 10, 80]), 1000, world=2)
    assert shares == [[[0], [1, 2, 3]]]
    assert edge_budget_batches([0, 1, 2], np.array([5, 5, 5]), 9, world=2) == [[[0, 2], [1]]]  # remainder joins
    assert edge_budget_batches([0, 1], np.array([900, 5]), 100, world=1) == [[[0]], [[1]]]  # too large: alone
    with pytest.raises(ValueError, match="cannot be shared by 3 processes"):
        edge_budget_batches([0, 1], np.array([1, 1]), 10, world=3)
    with pytest.raises(ValueError, match="max_edges_per_batch"):
        TrainConfig(max_edges_per_batch=0)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_epoch_batches_see_every_structure_once_per_epoch(world):
    n_edges = np.random.default_rng(0).integers(50, 700, size=37)
    config = TrainConfig(max_edges_per_batch=1500, seed=4)
    orders = []
    for epoch in range(3):
        shares = [epoch_batches(config, n_edges, epoch, rank, world) for rank in range(world)]
        assert len({len(s) for s in shares}) == 1  # every process takes the same number of steps
        seen = [k for s in shares for batch in s for k in batch]
        assert sorted(seen) == list(range(37))
        orders.append(seen)
    assert orders[0] != orders[1]  # reshuffled every epoch
    # fixed batches with several processes pad the epoch with repeats (DistributedSampler): not once each
    fixed = [k for rank in range(2) for b in epoch_batches(TrainConfig(batch_size=4), n_edges, 0, rank, 2) for k in b]
    assert len(fixed) == 38 and sorted(set(fixed)) == list(range(37))


def test_once_per_epoch_from_shards(tmp_path):
    pytest.importorskip("h5py")
    from minimace.data import read_configurations
    from minimace.datasets import bundled_dir
    from minimace.shards import ShardDataset, write_split

    configs = read_configurations(bundled_dir() / "water_box.xyz", index=":6") + \
        read_configurations(bundled_dir() / "train.xyz", index=":20")
    write_split(configs, tmp_path, "train", 4.0, shard_size=8)
    (tmp_path / "meta.json").write_text('{"format_version": 1, "r_max": 4.0, "splits": {"train": {"files": '
                                        '["train_00000.h5", "train_00001.h5", "train_00002.h5", "train_00003.h5"]}}}')
    data = ShardDataset(tmp_path, "train")
    n_edges = num_edges(data)
    assert n_edges.tolist() == [c.to_graph(4.0)["edge_index"].shape[1] for c in configs]
    for world in (1, 2):
        batches = edge_budget_batches(range(len(data)), n_edges, 1000, world)
        assert_each_once(batches, list(range(len(data))), n_edges, 1000, world)


def test_one_edge_batch_of_everything_equals_one_fixed_batch(tmp_path):
    """Same loss definition: a budget above the whole set's edges gives one batch, the batch of batch_size = S."""
    train_g, valid_g = t.load_ethanol()
    budget = int(num_edges(train_g).sum())
    runs = {}
    for name, extra in (("fixed", dict(batch_size=len(train_g))), ("edges", dict(max_edges_per_batch=budget))):
        train(t.tiny_model(), train_g, valid_g, TrainConfig(**{**t.FAST, **extra}), run_dir=tmp_path / name,
              log=t._quiet)
        runs[name] = t.load_checkpoint(tmp_path / name / "checkpoint.pt")
    a, b = runs["fixed"], runs["edges"]
    assert [r["steps"] for r in b["run_state"]["history"]] == [1, 1]
    assert [r["train_loss"] for r in a["run_state"]["history"]] == [r["train_loss"] for r in b["run_state"]["history"]]
    for k, v in a["model_state"].items():
        assert torch.equal(b["model_state"][k], v), k
    # negative control: half the budget makes several batches per epoch, and other weights
    train(t.tiny_model(), train_g, valid_g, TrainConfig(**{**t.FAST, "max_edges_per_batch": budget // 2}),
          run_dir=tmp_path / "small", log=t._quiet)
    c = t.load_checkpoint(tmp_path / "small" / "checkpoint.pt")
    assert all(r["steps"] > 1 for r in c["run_state"]["history"])
    assert any(not torch.equal(c["model_state"][k], v) for k, v in a["model_state"].items())
