"""Background warm-up after a cold start.

Functions scale from zero: the process must answer /healthz at once, so heavy
imports (litellm ≈3 s, the index and embedder, the name model) load in a daemon
thread started by the first request. A generate that arrives earlier simply waits
on the same imports; nothing is loaded twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("harvey.warmup")
_started = threading.Event()


def start(*loaders: Callable[[], object]) -> None:
    if _started.is_set():
        return
    _started.set()

    def work() -> None:
        began = time.perf_counter()
        for load in loaders:
            try:
                load()
            except Exception as exc:  # noqa: BLE001 - the request path will retry and report it
                log.warning("warm-up step failed", extra={"step": getattr(load, "__name__", "?"), "error": str(exc)})
        log.info("warm-up finished", extra={"seconds": round(time.perf_counter() - began, 3)})

    threading.Thread(target=work, name="harvey-warmup", daemon=True).start()
