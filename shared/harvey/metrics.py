"""Prometheus metrics shared by the functions. Labels stay bounded: no tenant or run ids.

Pods scale to zero, so counters reset per pod: dashboards use rate()/increase().
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["function", "method", "route"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["function", "method", "route", "status"])
DOCUMENTS_GENERATED = Counter("documents_generated_total", "Drafts returned", ["doc_type"])
GENERATION_FAILURES = Counter("generation_failures_total", "Runs that ended in an error", ["reason"])
LLM_FALLBACKS = Counter("llm_fallbacks_total", "Model calls that failed and fell through the chain", ["model"])
LLM_DURATION = Histogram(
    "llm_request_duration_seconds",
    "Time spent in one model call",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
FAITHFULNESS = Histogram(
    "faithfulness_score",
    "Overall faithfulness of returned drafts",
    ["doc_type"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)
EVENTS_EMITTED = Counter("events_emitted_total", "CloudEvents sent to K_SINK", ["type", "outcome"])
CACHE_LOOKUPS = Counter("retrieval_cache_lookups_total", "Retrieval cache lookups", ["outcome"])
ASYNC_REJECTED = Counter("harvey_async_rejected_total", "respond-async requests refused: the run queue was full")
STALE_RUNS = Counter("harvey_stale_runs_failed_total", "Runs closed as failed after their lease expired")
# Circuit breakers (name: a configured model, "other" or "redis") and per-tenant limits (issue 9).
BREAKER_STATE = Gauge("harvey_circuit_breaker_state", "0 closed, 1 half-open, 2 open (as this pod saw it)", ["name"])
BREAKER_TRANSITIONS = Counter("harvey_circuit_breaker_transitions_total", "Breaker state changes", ["name", "to"])
BREAKER_REJECTED = Counter("harvey_circuit_breaker_rejected_total", "Calls skipped by an open breaker", ["name"])
RATE_LIMITED = Counter("harvey_rate_limited_requests_total", "Requests refused by a tenant's rate limit", ["function"])
BUDGET_EXHAUSTED = Counter("harvey_budget_exhausted_total", "Runs refused: tenant's monthly budget spent", ["function"])


class StoredStatus(Collector):
    """`harvey_maintenance_last_success_timestamp_seconds{task}` and `harvey_audit_chain_broken`, read at
    scrape time through `read()` → (last success per task, chain broken 0/1 or None)."""

    def __init__(self, read: Callable[[], tuple[dict[str, float], int | None]]) -> None:
        self._read = read

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families({}, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families(*self._read())

    @staticmethod
    def _families(last: dict[str, float], broken: int | None) -> Iterator[GaugeMetricFamily]:
        success = GaugeMetricFamily(
            "harvey_maintenance_last_success_timestamp_seconds",
            "Unix time of the task's last complete, non-dry-run success (stored in PostgreSQL)",
            labels=["task"],
        )
        for task, value in sorted(last.items()):
            success.add_metric([task], value)
        yield success
        chain = GaugeMetricFamily("harvey_audit_chain_broken", "1 when the last audit verification found a break")
        if broken is not None:
            chain.add_metric([], broken)
        yield chain


_stored_status_lock = threading.Lock()
_stored_status: list[StoredStatus] = []


def export_stored_status(read: Callable[[], tuple[dict[str, float], int | None]]) -> None:
    """Export the maintenance gauges from this process (once; later calls are no-ops)."""
    with _stored_status_lock:
        if not _stored_status:
            _stored_status.append(StoredStatus(read))
            REGISTRY.register(_stored_status[0])


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


# Documents in through the ingest function (issue 11). kind: pdf, docx, html, text, markdown, other.
INGEST_DOCUMENTS = Counter(
    "harvey_ingest_documents_total",
    "Uploads by outcome: indexed, failed (unreadable), unchanged, error (stores/OCR)",
    ["kind", "outcome"],
)
INGEST_REJECTED = Counter(
    "harvey_ingest_rejected_total",
    "Uploads refused at once: queue_full, unsupported, wrong_type, too_large",
    ["reason"],
)
INGEST_QUEUE_WAIT = Histogram(
    "harvey_ingest_queue_wait_seconds",
    "From an upload's arrival to a worker taking it",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)
INGEST_DURATION = Histogram(
    "harvey_ingest_processing_seconds",
    "Parse, chunk, embed and index one upload",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
INGEST_CHUNKS = Counter("harvey_ingest_chunks_total", "Chunks embedded and indexed from uploads")
INGEST_PAGES = Counter("harvey_ingest_pages_total", "PDF pages of indexed uploads, by how they were read", ["method"])
STALE_DOCUMENTS = Counter(
    "harvey_stale_documents_total", "Uploads found past their lease: requeued, or failed after too many", ["action"]
)


class QueuedUploads(Collector):
    """`harvey_ingest_oldest_queued_seconds`: age of the oldest upload waiting for a worker, all tenants, read
    at scrape time through `read()` (None: none waiting or unknown, no sample) because a queue outlives pods."""

    def __init__(self, read: Callable[[], float | None]) -> None:
        self._read = read

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family(None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield self._family(self._read())

    @staticmethod
    def _family(age: float | None) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "harvey_ingest_oldest_queued_seconds", "Age of the oldest upload waiting for a worker"
        )
        if age is not None:
            family.add_metric([], age)
        return family


_queued_uploads: list[QueuedUploads] = []


def export_queued_uploads(read: Callable[[], float | None]) -> None:
    """Export the queue-age gauge from this process (once; later calls are no-ops)."""
    with _stored_status_lock:
        if not _queued_uploads:
            _queued_uploads.append(QueuedUploads(read))
            REGISTRY.register(_queued_uploads[0])
