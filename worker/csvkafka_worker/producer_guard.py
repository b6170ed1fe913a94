"""Producer overrides (sink.producer) that would silently weaken delivery, refused before connecting.

The worker's guarantees rest on the idempotent producer (no duplicate, no reordering on retry),
acks from all in-sync replicas, a bounded delivery timeout (nothing waits forever), the
transactional id it derives per shard (exactly-once fencing) and its own delivery reports (the
watermark). librdkafka accepts each of these overrides without a word, so they are checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

# librdkafka's spellings of one property (its aliases), by the name the error uses.
ALIASES = {
    "acks": ("acks", "request.required.acks"),
    "retries": ("retries", "message.send.max.retries"),
    "max.in.flight.requests.per.connection": ("max.in.flight.requests.per.connection", "max.in.flight"),
    "message.timeout.ms": ("message.timeout.ms", "delivery.timeout.ms"),
}
_FALSE = ("false", "f", "0", "no", "off")
_TRUE = ("true", "t", "1", "yes", "on")
# Idempotence keeps order and avoids duplicates with at most this many requests in flight.
MAX_IN_FLIGHT = 5


def _number(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None


def _checks() -> dict[str, Callable[[str], str | None]]:
    """For each property: what is wrong with a value (None: acceptable)."""

    def idempotence(value: str) -> str | None:
        return "turns off the idempotent producer (retries could duplicate or reorder rows)" \
            if value.strip().lower() in _FALSE else None

    def acks(value: str) -> str | None:
        return None if value.strip().lower() in ("all", "-1") else \
            "lets Kafka acknowledge rows that not every in-sync replica has (a broker failure loses them)"

    def retries(value: str) -> str | None:
        return "turns off retries (a transient broker error fails the import)" if _number(value) == 0 else None

    def in_flight(value: str) -> str | None:
        number = _number(value)
        return f"is more than the idempotent producer allows ({MAX_IN_FLIGHT}): rows could be reordered" \
            if number is not None and number > MAX_IN_FLIGHT else None

    def timeout(value: str) -> str | None:
        return "means waiting forever for an acknowledgement (an unreachable broker would never end the " \
               "import); set the Kafka retry budget, retry.kafkaSeconds, instead" if _number(value) == 0 else None

    def transactional_id(_value: str) -> str:
        return "would replace the per-shard transactional id the worker derives (exactly-once fencing); use " \
               "delivery: exactly-once"

    def report_only_errors(value: str) -> str | None:
        return "hides the acknowledgements the checkpoint waits for" if value.strip().lower() in _TRUE else None

    return {"enable.idempotence": idempotence, "acks": acks, "retries": retries,
            "max.in.flight.requests.per.connection": in_flight, "message.timeout.ms": timeout,
            "transactional.id": transactional_id, "delivery.report.only.error": report_only_errors}


def weakening(producer: Mapping[str, str]) -> list[str]:
    """One sentence per override that weakens delivery, naming the property, its value and the fix."""
    problems = []
    for name, check in _checks().items():
        for spelling in ALIASES.get(name, (name,)):
            value = producer.get(spelling)
            if value is None:
                continue
            why = check(value)
            if why is not None:
                problems.append(f"sink.producer {spelling}={value} {why}; remove it")
    return problems
