"""What happens to a block's bad records, by the import's bad-row policy. Pure: data in, decision out.

- fail: the rows before the first bad record are sent, then the import stops there;
- skip: bad records are counted and logged, the others sent;
- dead-letter: bad records go to the dead-letter topic with their origin and reason.

Under skip and dead-letter, `maxBadRows` bounds how many may be bad in all before the import fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from csvkafka_worker.encode import BadRecord
from csvkafka_worker.spec import BadRowAction, BadRowsSpec


@dataclass(frozen=True)
class Triage:
    # Records before this index are handled now (all of them, unless the import fails at `failure`).
    stop: int
    dead_letters: tuple[BadRecord, ...] = ()
    skipped: tuple[BadRecord, ...] = ()
    # fail: the first bad record, where the import stops.
    failure: BadRecord | None = None
    # skip / dead-letter: more bad rows in all than maxBadRows allows.
    over_limit: bool = False

    @property
    def bad(self) -> tuple[BadRecord, ...]:
        return self.dead_letters + self.skipped


def triage(bad: Sequence[BadRecord], count: int, policy: BadRowsSpec, bad_before: int) -> Triage:
    """`bad`: the block's bad records in order; `count`: its records; `bad_before`: bad rows in the
    import before this block."""
    if not bad:
        return Triage(stop=count)
    if policy.action is BadRowAction.FAIL:
        return Triage(stop=bad[0].index, failure=bad[0])
    limit = policy.max_bad_rows
    over = limit is not None and bad_before + len(bad) > limit
    if policy.action is BadRowAction.DEAD_LETTER:
        return Triage(stop=count, dead_letters=tuple(bad), over_limit=over)
    return Triage(stop=count, skipped=tuple(bad), over_limit=over)
