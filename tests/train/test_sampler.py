"""The global batch plan: deterministic, world-size independent, one file per batch."""

from __future__ import annotations

import numpy as np
import pytest

from salibi.train.sampler import GlobalBatchPlan, MicroBatchSampler, local_micro_batches


def plan(seed=0, batch=4):
    # Two files: dataset indices 0..9 and 10..16.
    return GlobalBatchPlan([range(0, 10), range(10, 17)], batch, seed)


def test_batches_come_from_one_file_and_cover_each_sample_at_most_once():
    batches = plan().epoch(0)
    assert len(batches) == plan().steps_per_epoch == 2 + 1
    seen = np.concatenate(batches)
    assert len(set(seen.tolist())) == len(seen)
    for batch in batches:
        assert (batch < 10).all() or (batch >= 10).all()


def test_same_seed_same_order_other_epoch_or_seed_other_order():
    assert all((a == b).all() for a, b in zip(plan().epoch(3), plan().epoch(3)))
    assert any((a != b).any() for a, b in zip(plan().epoch(0), plan().epoch(1)))
    assert any((a != b).any() for a, b in zip(plan(seed=0).epoch(0), plan(seed=1).epoch(0)))


@pytest.mark.parametrize(("world", "accumulate"), [(1, 1), (2, 1), (4, 1), (2, 2)])
def test_ranks_and_micro_batches_partition_the_global_batch(world, accumulate):
    global_batch = np.arange(100, 108)
    pieces = [m for r in range(world) for m in local_micro_batches(global_batch, r, world, accumulate)]
    assert len(pieces) == world * accumulate
    np.testing.assert_array_equal(np.concatenate(pieces), global_batch)


def test_sampler_resumes_mid_epoch_where_it_left_off():
    p = plan(batch=2)
    full = list(MicroBatchSampler(p, epoch=1, start_step=0, rank=0, world_size=1, accumulate=1))
    resumed = list(MicroBatchSampler(p, epoch=1, start_step=3, rank=0, world_size=1, accumulate=1))
    assert resumed == full[3:]
    stopped = list(MicroBatchSampler(p, epoch=1, start_step=1, rank=0, world_size=1, accumulate=1, stop_step=4))
    assert stopped == full[1:4]


def test_two_ranks_see_exactly_what_one_process_sees():
    p = plan(batch=4)
    single = list(MicroBatchSampler(p, 0, 0, rank=0, world_size=1, accumulate=1))
    rank0 = list(MicroBatchSampler(p, 0, 0, rank=0, world_size=2, accumulate=1))
    rank1 = list(MicroBatchSampler(p, 0, 0, rank=1, world_size=2, accumulate=1))
    assert [a + b for a, b in zip(rank0, rank1)] == single
