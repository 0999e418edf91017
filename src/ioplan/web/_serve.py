"""Running the app: the bind check and uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path

from ioplan.errors import InputError

__all__ = ["check_bind", "serve"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, token: str | None) -> None:
    """Refuse a port outside 1-65535 and any non-loopback ``host`` without a token.

    Examples
    --------
    >>> check_bind("127.0.0.1", 8000, None)
    >>> check_bind("0.0.0.0", 8000, None)
    Traceback (most recent call last):
    ...
    ioplan.errors.InputError: --host 0.0.0.0 is not loopback: give --token ...
    """
    if not 1 <= int(port) <= 65535:
        raise InputError(f"--port must be 1-65535, got {port}")
    if not _loopback(host) and not token:
        raise InputError(
            f"--host {host} is not loopback: give --token TOKEN (or IOPLAN_TOKEN) so that "
            "only those who have it can reach the cases"
        )
    if token is not None and len(token) < 16:
        raise InputError(f"--token must have at least 16 characters, got {len(token)}")


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another program listens on, before saying that ioplan serves there.

    Binds a socket as uvicorn would (SO_REUSEADDR) and closes it at once.
    """
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InputError(f"--host {host}: {exc.strerror or exc}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(
                    f"port {port} on {host} is in use (another ioplan serve?): choose another "
                    "--port"
                ) from None
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(cases_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
          token: str | None = None, max_upload_mb: float | None = None,
          registry_db: str | None = None) -> None:  # fmt: skip
    """Check the bind, build the app and run it with uvicorn until interrupted."""
    import uvicorn

    from ioplan.web._app import DEFAULT_MAX_UPLOAD_MB, create_app

    check_bind(host, port, token)
    # without a token, only loopback names (a page elsewhere cannot rebind a name to us)
    hosts = None if token else ["127.0.0.1", "localhost", "::1", host]
    app = create_app(cases_dir, token, max_upload_mb=max_upload_mb or DEFAULT_MAX_UPLOAD_MB,
                     allowed_hosts=hosts, registry_db=registry_db)  # fmt: skip
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("ioplan.web")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # uvicorn's own access log prints query strings (a token): ours prints paths only
    # open event streams (job progress, live frames) end when their job or session ends:
    # Ctrl-C first cancels those, so that the streams close and the server stops at once;
    # a stream that still hangs is cut after a short grace period
    config = uvicorn.Config(app, host=host, port=int(port), access_log=False,
                            log_level="warning", timeout_graceful_shutdown=3)  # fmt: skip
    _server_class()(config).run()


def _stop_work(app) -> None:
    """Cancel the app's jobs and live sessions (their event streams then end)."""
    svc = getattr(app.state, "ioplan", None)
    if svc is not None:
        svc.jobs.shutdown()
    live = getattr(app.state, "ioplan_live", None)
    if live is not None:
        live.shutdown()


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server that cancels the running work when asked to stop (Ctrl-C)."""

        def handle_exit(self, sig, frame) -> None:
            try:
                _stop_work(self.config.app)
            finally:
                super().handle_exit(sig, frame)

    return Server
