"""One TLS context per test process for each CA bundle the HTTP clients verify against.

Each httpx client (the WhatsApp and robot adapters, callbacks, the tests' own) and each aiogram session makes a
default TLS context, loading a whole CA bundle (certifi's, or the file SSL_CERT_FILE names): about 17 ms of CPU each,
a few hundred times in the inner loop, for clients that then talk plain HTTP to the fakes on 127.0.0.1. Production
does the same for the bots already (bots.telegram_ptb._tls): a context is only read once made, so one serves every
client that asks for the same bundle.
"""

from __future__ import annotations

import ssl
from typing import Any

_shared: dict[tuple[Any, Any], ssl.SSLContext] = {}


def share_default_tls_contexts() -> None:
    """``ssl.create_default_context`` for a server's certificate from a CA file or directory answers one context per
    (file, directory) in this process; any other call (client certificates, in-memory CA data) makes its own as before."""
    if getattr(ssl.create_default_context, "shared_by_tests", False):
        return
    original = ssl.create_default_context

    def create_default_context(purpose: Any = ssl.Purpose.SERVER_AUTH, *, cafile: Any = None, capath: Any = None, cadata: Any = None) -> ssl.SSLContext:
        if purpose is not ssl.Purpose.SERVER_AUTH or cadata is not None or (cafile is None and capath is None):
            return original(purpose, cafile=cafile, capath=capath, cadata=cadata)
        key = (cafile, capath)
        if key not in _shared:
            _shared[key] = original(purpose, cafile=cafile, capath=capath)
        return _shared[key]

    create_default_context.shared_by_tests = True  # type: ignore[attr-defined]
    ssl.create_default_context = create_default_context
