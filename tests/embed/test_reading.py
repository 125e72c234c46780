"""Reading ahead of the model in threads: items come in their order whatever order the reads
finish in, an error that escapes a read is raised to the consumer, and a consumer that stops
early stops the readers."""

from __future__ import annotations

import threading

import pytest

from salibi.embed.inputs.reading import read_in_threads


class Items:
    """Item i reads as [i]; item ``blocked`` finishes only once every later item has been read
    (``ahead`` of them), so the reads finish out of order; item ``failing`` raises."""

    def __init__(self, count: int, blocked: int = -1, failing: int = -1, later: int = 0) -> None:
        self.count, self.blocked, self.failing = count, blocked, failing
        self.read: list[int] = []
        self.lock = threading.Lock()
        self.later_done = threading.Semaphore(0)
        self.later = later

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> list[int]:
        if i == self.blocked:
            for _ in range(self.later):
                assert self.later_done.acquire(timeout=60), "the later items were never read"
        if i == self.failing:
            raise RuntimeError(f"item {i} escaped")
        with self.lock:
            self.read.append(i)
        if self.blocked < i <= self.blocked + self.later:
            self.later_done.release()
        return [i]


def test_items_come_in_order_when_reads_finish_out_of_order():
    items = Items(20, blocked=0, later=3)
    got = list(read_in_threads(items, threads=2, ahead=6))  # type: ignore[arg-type]
    assert got == [[i] for i in range(20)]
    assert items.read.index(0) > items.read.index(3)  # item 0 finished after items 1-3


def test_an_error_that_escapes_a_read_reaches_the_consumer():
    read = read_in_threads(Items(10, failing=4), threads=2, ahead=4)  # type: ignore[arg-type]
    assert [next(read) for _ in range(4)] == [[0], [1], [2], [3]]
    with pytest.raises(RuntimeError, match="item 4 escaped"):
        next(read)


def test_a_consumer_that_stops_early_stops_the_readers():
    items = Items(1000)
    read = read_in_threads(items, threads=2, ahead=8)  # type: ignore[arg-type]
    assert next(read) == [0]
    read.close()  # queued reads cancelled, running ones waited for
    count = len(items.read)
    assert count <= 1 + 8 + 2
    assert len(items.read) == count  # nothing reads after close()


def test_torch_leaves_the_readers_their_cores_on_the_cpu_only():
    import torch

    from salibi.embed.inputs.reading import READER_THREADS, _cores, cores_for_readers

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(_cores())  # as many as the machine has: some must go to the readers
        with cores_for_readers(torch.device("cpu")):
            assert torch.get_num_threads() == max(1, _cores() - READER_THREADS)
        assert torch.get_num_threads() == _cores()
        with cores_for_readers(torch.device("cuda")):  # the model runs on the GPU: nothing to leave
            assert torch.get_num_threads() == _cores()
    finally:
        torch.set_num_threads(before)
