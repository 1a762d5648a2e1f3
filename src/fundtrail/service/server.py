"""Running the application under uvicorn with several worker processes.

``--port 0`` picks a free port here (bound and released, then given to uvicorn, which binds it again in the
supervisor and shares it with the workers; not handed over by file descriptor: uvicorn would take such a
socket for a Unix one and leave Nagle on, costing 40 ms a response). The workers configure themselves from
the environment (runtime.Config.to_env). uvicorn stops cleanly on SIGINT and SIGTERM (in-flight requests
finish).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from fundtrail.service.runtime import Config


def bind(host: str, port: int) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(2048)
    s.set_inheritable(True)
    return s


def serve(config: Config, host: str = "127.0.0.1", port: int = 8080,
          on_listen: Callable[[str], None] | None = None, log_level: str = "warning") -> None:
    import uvicorn

    # the store's migrations run once here, before the workers race for them
    from fundtrail.service.store import open_store

    open_store(config.db, config.home).close()
    if port == 0:
        sock = bind(host, 0)
        port = sock.getsockname()[1]
        sock.close()
    url = f"http://{host}:{port}"
    os.environ.update(config.to_env())
    if on_listen is not None:
        on_listen(url)
    uvicorn.run("fundtrail.service.app:app_from_env", factory=True, host=host, port=port,
                workers=config.workers if config.workers > 1 else None, log_level=log_level,
                timeout_graceful_shutdown=10, access_log=False, lifespan="on")
