"""Background warm-up after a cold start.

Functions scale from zero: the process must answer /healthz at once, so heavy loads
(litellm ≈3.5 s when a remote model is configured, the index and embedder, the name model)
run in a daemon thread started by the first request. `ready()`, which `/healthz?ready=1`
(the readiness probe) reports, turns true once litellm is loaded when a model needs it: a
draft sent after it waits on no import. A request that arrives earlier waits on the same
loads; nothing is loaded twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("harvey.edge.warmup")
_started = threading.Event()
_finished = threading.Event()


def start(*loaders: Callable[[], object]) -> None:
    """Run each loader in a daemon thread of its own: litellm's import holds the GIL, the index and
    embedder load in native code, so side by side they take about as long as the slower one."""
    if _started.is_set():
        return
    _started.set()
    began = time.perf_counter()

    def step(load: Callable[[], object]) -> None:
        try:
            load()
        except Exception as exc:  # noqa: BLE001 - the request path will retry and report it
            log.warning("warm-up step failed", extra={"step": getattr(load, "__name__", "?"), "error": str(exc)})

    def work() -> None:
        threads = [threading.Thread(target=step, args=(load,), name="harvey-warmup", daemon=True) for load in loaders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _finished.set()  # a failed step is logged, not retried here: waiting longer would not help
        log.info("warm-up finished", extra={"seconds": round(time.perf_counter() - began, 3)})

    threading.Thread(target=work, name="harvey-warmup", daemon=True).start()


def finished() -> bool:
    """Every warm-up step has run (or none was started): nothing more loads in the background, where it
    would hold the interpreter lock while requests are being served."""
    return _finished.is_set() or not _started.is_set()


def ready() -> bool:
    """Readiness: a draft sent now waits on no litellm import (GIL-bound, it would stall the draft).

    True with no warm-up started (a function that has none), once it has run, or once the model chain
    is loaded (at once for an offline chain). The index and embedder may still be loading: native code
    that overlaps well with a first request, which measured faster than waiting for them.
    """
    if not _started.is_set() or _finished.is_set():
        return True
    from harvey.drafting import llm

    return llm.ready()
