"""Start-up work that does not depend on the boot, begun in a worker thread at once.

``run`` calls ``start()`` before it imports the rest of the runtime. The thread
builds the TLS context the platform client will use: httpx's own default for
``verify=True`` (``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi's
bundle), ~25 ms, nearly all of it in OpenSSL loading the bundle, which releases
the GIL, so it really runs beside the boot's imports (measured: a busy main
thread keeps its pace while it loads). It imports nothing heavy itself: an
import in a second thread only competes for the GIL. ``tls_context()`` hands the
context over, or ``None`` (httpx then builds its own, as before) if the thread
failed or has not finished within a short wait.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading

__all__ = ["default_tls_context", "start", "tls_context"]

log = logging.getLogger(__name__)

_done = threading.Event()
_context: ssl.SSLContext | None = None
_thread: threading.Thread | None = None


def default_tls_context() -> ssl.SSLContext:
    """What httpx 0.28 builds for ``verify=True`` (``httpx._config.create_ssl_context``)."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _work() -> None:
    global _context
    try:
        _context = default_tls_context()
    except Exception:  # the client builds its own and reports what is wrong
        log.debug("TLS context prefetch failed", exc_info=True)
    finally:
        _done.set()


def start() -> None:
    """Begin the prefetch (once per process)."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_work, name="prefetch", daemon=True)
        _thread.start()


def tls_context(wait: float = 0.5) -> ssl.SSLContext | None:
    """The prefetched TLS context, or ``None`` if there is none (not started, failed,
    or not ready within ``wait`` seconds)."""
    if _thread is None:
        return None
    _done.wait(wait)
    return _context
