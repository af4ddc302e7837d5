"""utils.distributed: single-process behaviour (rank 0 of 1), the torchrun error, and in a real two-process gloo
group the collectives, ``main_process_first`` ordering, and the rank-aware handlers built on them (a time budget
that stops every process at the same iteration; checkpoints, run lock and CSV log written by rank 0 alone)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from medsyn_monai.handlers import AtomicCheckpoint, TimeBudget, TrainingStatsHandler
from medsyn_monai.utils import (
    RunLock,
    all_reduce_max,
    all_reduce_sum,
    barrier,
    destroy_distributed,
    get_rank,
    get_world_size,
    init_distributed,
    is_distributed,
    is_main_process,
    local_device,
    main_process_first,
)
from tests._helpers import run_processes


def test_single_process_is_rank_zero_of_one():
    assert not is_distributed() and get_rank() == 0 and get_world_size() == 1 and is_main_process()
    assert all_reduce_sum([1, 2.5]) == [1.0, 2.5] and all_reduce_max([3]) == [3.0]
    barrier()
    with main_process_first():
        pass


def test_local_device(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert local_device("cuda") == torch.device("cuda", 1)
    assert local_device("cpu") == torch.device("cpu")
    monkeypatch.delenv("LOCAL_RANK")
    assert local_device("cuda:0") == torch.device("cuda", 0)


def test_init_without_torchrun_says_how(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun --standalone --nproc_per_node=2"):
        init_distributed("cpu")


def _group(rank: int, out: str) -> None:
    folder = Path(out)
    report = {"rank": rank, "world": get_world_size(), "main": is_main_process()}
    report["sum"] = all_reduce_sum([rank + 1, 10])
    report["max"] = all_reduce_max([rank * 5.0])
    # main_process_first: rank 0 writes the file before rank 1 enters the block
    with main_process_first():
        marker = folder / "written_by_main"
        if rank == 0:
            time.sleep(0.5)
            marker.write_text("0")
        report["saw_marker"] = marker.is_file()
    # rank-aware writers: one run lock, one checkpoint set, one CSV, all by rank 0
    run = folder / "run"
    lock = RunLock(run, "test").acquire()
    report["lock_held"] = lock.held
    net = torch.nn.Linear(2, 2)
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(net.parameters(), 0.1)
    engine = Engine(lambda e, b: {"loss": torch.tensor(float(rank + 1)), "image": torch.zeros(2, 1)})
    checkpoint = AtomicCheckpoint(run / "models", {"net": net}, model_key="net", model_info={"n": 1}).prepare()
    checkpoint.attach(engine)
    TrainingStatsHandler(optimizer, csv_path=run / "log.csv").attach(engine)
    # rank 1's clock runs 3x faster: the budget of 1 minute is spent after 2 iterations there, 6 on rank 0
    ticks = iter(range(0, 10_000, 10 if rank == 0 else 30))
    budget = TimeBudget(max_minutes=1.0, clock=lambda: float(next(ticks)))
    budget.attach(engine)
    engine.run(range(20), max_epochs=1)
    report["iterations"] = engine.state.iteration
    lock.release()
    (folder / f"rank{rank}.json").write_text(json.dumps(report))


def test_two_processes(tmp_path):
    run_processes(_group, str(tmp_path))
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["main"] for r in reports] == [True, False] and all(r["world"] == 2 for r in reports)
    assert all(r["sum"] == [3.0, 20.0] and r["max"] == [5.0] for r in reports)
    assert all(r["saw_marker"] for r in reports)
    assert [r["lock_held"] for r in reports] == [True, False]
    # both stopped when the faster clock said so (iteration 2 of rank 1's clock), together
    assert [r["iterations"] for r in reports] == [2, 2]
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "models").iterdir()) == ["checkpoint.pt", "model.pt", "model_info.json"]
    rows = (run / "log.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split(",")[2] == "1.5"  # one row, the mean loss of both processes (1 and 2)
    assert not (run / ".medsyn_run.lock").exists()


def _slow_leave(rank: int, out: str) -> None:
    real_destroy = torch.distributed.destroy_process_group

    def destroy_then_wait(*args, **kwargs):  # rank 1 takes its time shutting its group down
        real_destroy(*args, **kwargs)
        if rank == 1:
            time.sleep(1.0)
            (Path(out) / "rank1_destroyed").write_text(repr(time.time()))

    torch.distributed.destroy_process_group = destroy_then_wait
    destroy_distributed()
    (Path(out) / f"rank{rank}_left").write_text(repr(time.time()))


def test_destroy_waits_for_every_process(tmp_path):
    """No process leaves destroy_distributed (and exits, closing its connections) before every peer has destroyed
    its group."""
    run_processes(_slow_leave, str(tmp_path))
    destroyed = float((tmp_path / "rank1_destroyed").read_text())
    assert float((tmp_path / "rank0_left").read_text()) >= destroyed
    assert float((tmp_path / "rank1_left").read_text()) >= destroyed
