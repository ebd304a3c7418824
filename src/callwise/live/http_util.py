"""Small HTTP helpers shared by callwise's OpenAI-compatible servers (replay, policy).

- :func:`openai_error` builds an error response with OpenAI's body shape, so that OpenAI clients
  (the official SDK, LiteLLM, ...) raise their usual typed errors with our message.
- :func:`install_openai_errors` makes every error a FastAPI app can produce (validation, unknown
  route, wrong method, unhandled exception) use that shape, never an HTML or plain-text page.
- :class:`BackgroundServer` runs an ASGI app on a free local port in a daemon thread, for tests
  and benchmarks that need real HTTP rather than an in-process transport.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Mapping

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["BackgroundServer", "install_openai_errors", "openai_error"]


def openai_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error response with OpenAI's body: ``{"error": {"message", "type", "param", "code"}}``.

    OpenAI clients read ``message``/``type``/``param``/``code`` from this body into their
    exceptions (e.g. ``openai.NotFoundError.code``), so callers see the server's reason verbatim.
    """
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


def _loc_to_param(loc: Any) -> str | None:
    """A validation error location as a field path: ``("body", "messages", 0, "role")`` -> ``messages[0].role``."""
    parts = [p for p in (loc or ()) if p not in ("body", "query", "path", "header", "cookie")]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or None


def install_openai_errors(app: "FastAPI") -> None:
    """Make ``app`` (FastAPI) answer every error with an OpenAI-style JSON body.

    - request validation errors (FastAPI's ``RequestValidationError``) -> 400 naming the field;
    - unknown route -> 404, wrong method -> 405, any other ``HTTPException`` -> its status;
    - an unhandled exception -> 500 with type ``server_error``. The traceback never goes to the
      client; Starlette re-raises the exception after this response is sent, so the server (uvicorn)
      logs it.
    """
    from fastapi.exceptions import RequestValidationError

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        if not errors:
            return openai_error(400, "invalid request")
        first = errors[0]
        param = _loc_to_param(first.get("loc"))
        msg = str(first.get("msg", "invalid value"))
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        where = f"field {param!r}: " if param else ""
        return openai_error(400, f"invalid request: {where}{msg}{more}", param=param)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        headers = dict(exc.headers) if getattr(exc, "headers", None) else None
        if status == 404:
            message = f"unknown route {request.method} {request.url.path}"
            if isinstance(exc.detail, str) and exc.detail not in ("Not Found", ""):
                message = exc.detail
            return openai_error(404, message, code="not_found", headers=headers)
        if status == 405:
            return openai_error(405, f"method {request.method} is not allowed on {request.url.path}",
                                code="method_not_allowed", headers=headers)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return openai_error(status, detail, type="server_error" if status >= 500 else "invalid_request_error",
                            headers=headers)

    async def on_exception(request: Request, exc: Exception) -> JSONResponse:
        return openai_error(500, "internal error in the server (see the server log)", type="server_error")

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_exception)


class BackgroundServer:
    """Run an ASGI app with uvicorn in a daemon thread, for tests and benchmarks.

    Binds ``host`` (127.0.0.1) on ``port`` (0: a free port chosen by the OS; the real one is read
    from the bound socket). ``with BackgroundServer(app) as srv:`` returns once the server accepts
    connections (or raises ``RuntimeError`` after ``start_timeout`` seconds); ``srv.url`` is
    ``http://127.0.0.1:PORT``. Leaving the block asks uvicorn to exit and joins the thread (bounded
    by ``stop_timeout``; a server still running then is forced to exit).
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        log_level: str = "warning",
    ) -> None:
        import uvicorn

        self.host = host
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                                lifespan="auto", ws="none")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.port: int = port

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run()
        except BaseException as e:  # noqa: BLE001 - SystemExit from a failed bind must not vanish
            self._error = e

    def start(self) -> "BackgroundServer":
        """Start the server and wait until it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("this BackgroundServer was already started")
        self._thread = threading.Thread(target=self._run, name="callwise-uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                why = f": {self._error!r}" if self._error is not None else ""
                raise RuntimeError(f"the server on {self.host}:{self.port} stopped before it started{why} "
                                   "(is the port in use? see the uvicorn log above)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.host}:{self.port} did not start within "
                                   f"{self.start_timeout:g} s")
            time.sleep(0.005)
        servers = getattr(self._server, "servers", None) or []
        for s in servers:
            for sock in s.sockets or ():
                self.port = int(sock.getsockname()[1])
                break
            break
        return self

    def stop(self) -> None:
        """Ask the server to exit and join its thread (bounded; forces exit when slow)."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(self.stop_timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(self.stop_timeout)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
