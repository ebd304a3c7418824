"""What an operator of ``callwise serve`` watches: Prometheus metrics and a JSON access log.

- :class:`Metrics` holds the server's counters and histograms in its own registry (so two servers
  in one process, as in tests, do not collide) and renders them in Prometheus' text format for
  ``/metrics``: requests by policy and status, errors by kind, request latency, upstream calls by
  policy and model (and whether the response cache served them), escalated requests, and dollars
  spent by key and model. API keys never appear: a key is labelled by :func:`key_id`, the first
  ten hex digits of its SHA-256.
- :func:`log_access` writes one JSON line per request to the ``callwise.access`` logger: request
  id (also sent back as ``x-request-id``), path, status, policy, key id, latency, cost, the model
  that answered and the error, if any.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

ACCESS = logging.getLogger("callwise.access")
#: Request latency buckets (seconds): a cached answer takes milliseconds, a cascade over a slow model tens of seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def key_id(key: str | None) -> str:
    """A key's label in metrics and logs: never the key itself."""
    return "none" if key is None else hashlib.sha256(key.encode()).hexdigest()[:10]


class Metrics:
    """The server's Prometheus metrics (``prometheus-client``, part of the ``live`` extra)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("callwise_requests", "Chat requests by policy and HTTP status",
                                ["policy", "status"], registry=r)
        self.errors = Counter("callwise_request_errors", "Failed chat requests by kind", ["kind"], registry=r)
        self.latency = Histogram("callwise_request_seconds", "Chat request latency (seconds)", ["policy"],
                                 buckets=BUCKETS, registry=r)
        self.calls = Counter("callwise_upstream_calls", "Upstream calls made for answered requests",
                             ["policy", "model", "cached"], registry=r)
        self.escalated = Counter("callwise_escalated_requests", "Answered requests that called more than one model",
                                 ["policy"], registry=r)
        self.spend = Counter("callwise_spend_dollars", "Dollars charged to keys, by key id and model",
                             ["key", "model"], registry=r)

    def observe(self, *, policy: str, status: int, seconds: float, kind: str | None = None,
                out: dict[str, Any] | None = None, key: str | None = None) -> None:
        """Count one request; ``out`` is the server's result for an answered one."""
        self.requests.labels(policy, str(status)).inc()
        self.latency.labels(policy).observe(seconds)
        if kind is not None:
            self.errors.labels(kind).inc()
        if out is None:
            return
        calls = out.get("calls") or []
        for c in calls:
            self.calls.labels(policy, str(c["served_by"]), "true" if c["cached"] else "false").inc()
            if not c["cached"] and c["cost"]:
                self.spend.labels(key_id(key), str(c["served_by"])).inc(float(c["cost"]))
        if len({c["model"] for c in calls}) > 1:
            self.escalated.labels(policy).inc()

    def render(self) -> tuple[bytes, str]:
        """(body, content type) of ``/metrics``."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def log_access(request_id: str, path: str, status: int, started: float, *, policy: str | None = None,
               key: str | None = None, out: dict[str, Any] | None = None, error: str | None = None) -> None:
    """One JSON line on the ``callwise.access`` logger (INFO; WARNING for 5xx)."""
    line: dict[str, Any] = {"ts": round(time.time(), 3), "request_id": request_id, "path": path, "status": status,
                            "policy": policy, "key": key_id(key), "latency_ms": round((time.perf_counter() - started)
                                                                                      * 1000, 2)}
    if out is not None:
        line.update(cost=out.get("cost"), answered_by=out.get("answered_by"), calls=len(out.get("calls") or []))
    if error is not None:
        line["error"] = error[:300]
    ACCESS.log(logging.WARNING if status >= 500 else logging.INFO, json.dumps(line, default=str))


__all__ = ["ACCESS", "BUCKETS", "Metrics", "key_id", "log_access"]
