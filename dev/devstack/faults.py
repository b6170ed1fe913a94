"""Faults on the stack's network: a typed client of Toxiproxy's HTTP API, for the stack and the tests.

Each proxy stands between clients and one service (a Kafka broker, S3, DynamoDB). Toxics act on one
direction of its connections (`downstream`: towards the client); stateful ones, like `limit_data`,
count per connection, so every new connection is cut again after the same number of bytes.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Stream = Literal["upstream", "downstream"]
MiB = 1024 * 1024


class ToxiproxyError(RuntimeError):
    """Toxiproxy refused a request or did not answer; the message names the request."""


@dataclass(frozen=True)
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool = True


@dataclass(frozen=True)
class Toxic:
    name: str
    type: str
    stream: Stream
    toxicity: float = 1.0
    attributes: Mapping[str, int] = field(default_factory=dict)


class Toxiproxy:
    """Toxiproxy's API at `url`; every request is bounded by `timeout` seconds."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def version(self) -> str:
        return str(self._request("GET", "/version"))

    def proxies(self) -> dict[str, Proxy]:
        listed = self._request("GET", "/proxies")
        return {name: _proxy(p) for name, p in listed.items()}

    def populate(self, proxies: Sequence[Proxy]) -> None:
        """Creates the proxies that are missing or differ; leaves the others (and their toxics) alone."""
        self._request("POST", "/populate", [_proxy_json(p) for p in proxies])

    def toxics(self, proxy: str) -> list[Toxic]:
        return [_toxic(t) for t in self._request("GET", f"/proxies/{proxy}/toxics")]

    def add(self, proxy: str, toxic: Toxic) -> Toxic:
        return _toxic(self._request("POST", f"/proxies/{proxy}/toxics", {
            "name": toxic.name, "type": toxic.type, "stream": toxic.stream, "toxicity": toxic.toxicity,
            "attributes": dict(toxic.attributes)}))

    def remove(self, proxy: str, toxic: str) -> None:
        self._request("DELETE", f"/proxies/{proxy}/toxics/{toxic}")

    def latency(self, proxy: str, ms: int, *, jitter_ms: int = 0, stream: Stream = "downstream") -> Toxic:
        """Delays every chunk of data by `ms` (± `jitter_ms`)."""
        return self.add(proxy, Toxic(f"latency-{stream}", "latency", stream,
                                     attributes={"latency": ms, "jitter": jitter_ms}))

    def bandwidth(self, proxy: str, kib_per_second: int, *, stream: Stream = "downstream") -> Toxic:
        """Caps the rate of every connection."""
        return self.add(proxy, Toxic(f"bandwidth-{stream}", "bandwidth", stream,
                                     attributes={"rate": kib_per_second}))

    def reset_peer(self, proxy: str, *, after_ms: int = 0) -> Toxic:
        """Resets every connection (TCP RST) `after_ms` after it opens."""
        return self.add(proxy, Toxic("reset-peer", "reset_peer", "upstream", attributes={"timeout": after_ms}))

    def limit_data(self, proxy: str, limit: int, *, stream: Stream = "downstream") -> Toxic:
        """Closes each connection once `limit` bytes passed in `stream` (each new connection gets as many)."""
        return self.add(proxy, Toxic(f"limit-data-{stream}", "limit_data", stream, attributes={"bytes": limit}))

    def black_hole(self, proxy: str) -> Toxic:
        """Accepts connections and drops their data until removed: a network that stopped answering."""
        return self.add(proxy, Toxic("black-hole", "timeout", "upstream", attributes={"timeout": 0}))

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        """A disabled proxy closes its connections and refuses new ones: the service is unreachable."""
        self._request("POST", f"/proxies/{proxy}", {"enabled": enabled})

    @contextlib.contextmanager
    def disabled(self, *proxies: str) -> Iterator[None]:
        """The proxies are disabled inside the block and enabled again however it ends."""
        try:
            for name in proxies:
                self.set_enabled(name, False)
            yield
        finally:
            for name in proxies:
                self.set_enabled(name, True)

    def disable_for(self, proxies: Sequence[str], seconds: float) -> None:
        """Makes the services behind `proxies` unreachable for `seconds`, then reachable again."""
        with self.disabled(*proxies):
            time.sleep(seconds)

    def reset(self) -> None:
        """Enables every proxy and removes every toxic."""
        self._request("POST", "/reset")

    def _request(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,  # noqa: S310 (our URL)
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace").strip()
            raise ToxiproxyError(f"toxiproxy {method} {path} failed ({error.code}): {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            raise ToxiproxyError(f"toxiproxy at {self.url} did not answer {method} {path}: {error}") from error
        return json.loads(text) if text.strip() else None


def _proxy_json(proxy: Proxy) -> dict[str, object]:
    return {"name": proxy.name, "listen": proxy.listen, "upstream": proxy.upstream, "enabled": proxy.enabled}


def _proxy(raw: Mapping[str, Any]) -> Proxy:
    return Proxy(str(raw["name"]), str(raw["listen"]), str(raw["upstream"]), bool(raw["enabled"]))


def _toxic(raw: Mapping[str, Any]) -> Toxic:
    return Toxic(str(raw["name"]), str(raw["type"]), raw["stream"], float(raw["toxicity"]),
                 {str(k): int(v) for k, v in (raw.get("attributes") or {}).items()})
