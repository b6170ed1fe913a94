"""What the operator asks of its services, counted: Kubernetes API and DynamoDB requests.

Read on the liveness endpoint (`requests`), so that a load test can divide them by the imports.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

KUBERNETES = "kubernetes"
DYNAMODB = "dynamodb"


class Requests:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._counts[what] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {KUBERNETES: 0, DYNAMODB: 0, **self._counts}


def count_kubernetes(api: Any, requests: Requests) -> None:
    """Counts every call the API client makes (the typed APIs all go through `call_api`)."""
    call = api.call_api

    def counted(*args: Any, **kwargs: Any) -> Any:
        requests.add(KUBERNETES)
        return call(*args, **kwargs)

    api.call_api = counted


def count_dynamodb(dynamodb: Any, requests: Requests) -> None:
    """Counts every DynamoDB request a boto3 client sends (each attempt of a retried call too)."""
    dynamodb.meta.events.register("before-send.dynamodb", lambda **_: requests.add(DYNAMODB))
