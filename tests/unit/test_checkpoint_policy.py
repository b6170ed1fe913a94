"""When a checkpoint is due, and the checkpoint key of each shard."""

from __future__ import annotations

import pytest

from csvkafka_worker.checkpoint import CheckpointPolicy, shard_job_id


@pytest.mark.parametrize(("rows", "seconds", "due"), [
    (0, 0.0, False),
    (999, 4.9, False),
    (1000, 0.0, True),  # rows first
    (5000, 0.1, True),
    (0, 5.0, True),  # time first
    (3, 60.0, True),
])
def test_at_least_once_checkpoints_after_rows_or_seconds_whichever_first(rows: int, seconds: float, due: bool) -> None:
    assert CheckpointPolicy(every_rows=1000, every_seconds=5.0, transactional=False).due(rows, seconds) is due


@pytest.mark.parametrize(("rows", "seconds", "due"), [
    (10**9, 0.0, False),  # exactly-once commits on time alone: rows cause no duplicates there
    (0, 4.99, False),
    (0, 5.0, True),
    (10, 7.5, True),
])
def test_exactly_once_commits_on_time_only(rows: int, seconds: float, due: bool) -> None:
    assert CheckpointPolicy(every_rows=1000, every_seconds=5.0, transactional=True).due(rows, seconds) is due


def test_shard_checkpoint_keys() -> None:
    assert shard_job_id("job", 0, 1) == "job"
    assert [shard_job_id("job", i, 3) for i in range(3)] == ["job#0/3", "job#1/3", "job#2/3"]
