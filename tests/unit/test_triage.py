"""What happens to a block's bad records under each bad-row policy (pure)."""

from __future__ import annotations

import pytest

from csvkafka_worker.encode import BadKind, BadRecord
from csvkafka_worker.spec import BadRowAction, BadRowsSpec
from csvkafka_worker.triage import Triage, triage

BAD = (BadRecord(3, BadKind.FIELDS, 2, 3), BadRecord(7, BadKind.ENCODING, 4), BadRecord(9, BadKind.OVERSIZED, 2000))
FAIL = BadRowsSpec()
SKIP = BadRowsSpec(action=BadRowAction.SKIP)
DEAD_LETTER = BadRowsSpec(action=BadRowAction.DEAD_LETTER, dead_letter_topic="dlq")


@pytest.mark.parametrize("policy", [FAIL, SKIP, DEAD_LETTER, BadRowsSpec(action=BadRowAction.SKIP, max_bad_rows=0)])
def test_a_block_without_bad_records_goes_whole(policy: BadRowsSpec) -> None:
    assert triage([], 12, policy, bad_before=100) == Triage(stop=12)


def test_fail_sends_the_rows_before_the_first_bad_record_and_stops_there() -> None:
    verdict = triage(BAD, 12, FAIL, bad_before=0)
    assert verdict.stop == 3 and verdict.failure == BAD[0]
    assert verdict.bad == () and not verdict.over_limit
    first = triage([BadRecord(0, BadKind.UNTERMINATED)], 1, FAIL, bad_before=0)
    assert first.stop == 0 and first.failure == BadRecord(0, BadKind.UNTERMINATED)


def test_skip_counts_every_bad_record_and_sends_the_others() -> None:
    verdict = triage(BAD, 12, SKIP, bad_before=1000)
    assert verdict == Triage(stop=12, skipped=BAD)
    assert verdict.bad == BAD and verdict.failure is None and verdict.dead_letters == ()


def test_dead_letter_sends_every_bad_record_to_the_dead_letter_topic() -> None:
    verdict = triage(BAD, 12, DEAD_LETTER, bad_before=0)
    assert verdict == Triage(stop=12, dead_letters=BAD)
    assert verdict.bad == BAD and verdict.skipped == ()


@pytest.mark.parametrize("action", [BadRowAction.SKIP, BadRowAction.DEAD_LETTER])
@pytest.mark.parametrize(("max_bad_rows", "bad_before", "over"), [
    (None, 10**9, False),  # no limit
    (5, 2, False),  # 2 + 3 = 5: at the limit, not over it
    (5, 3, True),
    (0, 0, True),  # no bad row allowed at all
    (2, 0, True),  # the block alone is over
])
def test_max_bad_rows_bounds_the_bad_rows_of_the_whole_import(action: BadRowAction, max_bad_rows: int | None,
                                                              bad_before: int, over: bool) -> None:
    policy = BadRowsSpec(action=action, dead_letter_topic="dlq", max_bad_rows=max_bad_rows)
    verdict = triage(BAD, 12, policy, bad_before)
    assert verdict.over_limit is over
    assert verdict.stop == 12 and verdict.bad == BAD and verdict.failure is None


def test_fail_ignores_the_limit() -> None:
    policy = BadRowsSpec(max_bad_rows=100)
    assert triage(BAD, 12, policy, bad_before=0) == Triage(stop=3, failure=BAD[0])
