"""A stand-in HTTP server on 127.0.0.1 that replays real STAC / Sentinel Hub responses.

The real client libraries (pystac-client, GDAL's /vsicurl/, sentinelhub) talk to it over a real
socket: nothing of theirs is mocked. Routes are plain functions registered per test; files are
served with HTTP range requests as a COG server (S3, Azure blob) does. Every request is logged so
the tests can check what the clients really sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Handler = Callable[["Request"], "Response"]


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


@dataclass
class LoggedRequest:
    method: str
    path: str
    status: int
    range: str | None
    body: bytes
    sent: int


class StandIn:
    """A threaded HTTP server on 127.0.0.1 with registered routes, injectable failures and a log."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.files: dict[str, Path] = {}
        self.failures: dict[str, deque[int]] = defaultdict(deque)
        self.log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        standin = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                req = Request(self.command, path, query, dict(self.headers.items()), body)
                resp = standin.dispatch(req)
                payload = resp.body
                sent = 0 if self.command == "HEAD" else len(payload)
                with standin._lock:
                    standin.log.append(
                        LoggedRequest(self.command, path, resp.status, self.headers.get("Range"), body, sent)
                    )
                self.send_response(resp.status)
                headers = {"Content-Length": str(len(payload)), **resp.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _serve  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="standin", daemon=True
        )

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # -- configuration ---------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern + "$"), handler))

    def serve_file(self, url_path: str, path: Path) -> str:
        """Serve a local file at ``url_path`` with range support; returns its full URL."""
        self.files[url_path] = path
        return self.url + url_path

    def fail(self, url_path: str, *statuses: int) -> None:
        """Answer the next requests to ``url_path`` with these statuses, then normally."""
        self.failures[url_path].extend(statuses)

    def requests(self, path_prefix: str = "", method: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [
                r
                for r in self.log
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    # -- dispatch --------------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response:
        with self._lock:
            queue = self.failures.get(req.path)
            status = queue.popleft() if queue else None
        if status is not None:
            return Response.json({"code": status, "description": "injected failure"}, status)
        if req.path in self.files:
            return self._file(req, self.files[req.path])
        for method, pattern, handler in self.routes:
            if method == req.method and pattern.match(req.path):
                return handler(req)
        return Response.json({"code": "NotFound", "description": f"no route {req.method} {req.path}"}, 404)

    @staticmethod
    def _file(req: Request, path: Path) -> Response:
        if not path.is_file():
            return Response.json({"code": "NoSuchKey"}, 404)
        data = path.read_bytes()
        size = len(data)
        common = {"Accept-Ranges": "bytes", "Content-Type": "image/tiff"}
        rng = req.headers.get("Range")
        if req.method == "HEAD":
            return Response(200, b"", common | {"Content-Length": str(size)})
        if not rng:
            return Response(200, data, common)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
        if not m:  # multi-range requests are answered with the whole file, as S3 does
            return Response(200, data, common)
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
        if start >= size:
            return Response(416, b"", {"Content-Range": f"bytes */{size}"})
        return Response(206, data[start : end + 1], common | {"Content-Range": f"bytes {start}-{end}/{size}"})
