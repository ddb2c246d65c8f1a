"""`carbonmeter report --serve`: the HTML report from a local folder, kept current while runs
append (issue 28's team view, CodeCarbon #1348's local view): no database, no login.

One page and one small version stamp, from the standard library's HTTP server, on the loopback
address unless told otherwise. The stamp is a digest of the CSVs' names, sizes and modification
times; the page asks for it every `interval_s` seconds and reloads itself when it changes, and
the server renders the page again only then. Bounded: the stamp is computed at most once a
second whatever the number of clients, a render at most once per change, and requests for
anything else (any file of the folder included) are answered 404.
"""

from __future__ import annotations

import glob
import hashlib
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from carbonmeter.report import html, model

# The page's own script and styles are inline, and it asks only its server for the stamp.
POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:"
)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def csv_files(paths: list[str]) -> list[Path]:
    """The CSVs `paths` name now: folders searched recursively, files as given, and anything
    else taken as a glob pattern (a folder may gain files while served)."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found.extend(sorted(path.rglob("*.csv")))
        elif path.is_file():
            found.append(path)
        else:
            found.extend(Path(p) for p in sorted(glob.glob(text, recursive=True)))
    return found


def stamp(paths: list[str]) -> str:
    """A digest of every CSV's path, size and modification time: it changes when a run
    appends a row, a file appears or one goes."""
    digest = hashlib.sha256()
    for path in csv_files(paths):
        try:
            info = path.stat()
        except OSError:
            continue  # removed between the listing and the stat: the next stamp says so
        digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


REFRESH = """
(() => {
  const seen = "%(version)s";
  setInterval(() => {
    fetch("/version", { cache: "no-store" })
      .then((answer) => answer.text())
      .then((version) => { if (version !== seen) location.reload(); })
      .catch(() => {});  // the server stopped: the page stays as it was
  }, %(interval_ms)d);
})();
"""


class Board:
    """The served page: rendered from `paths` when their stamp changes, kept otherwise."""

    def __init__(
        self,
        paths: list[str],
        zones: list[str] | None,
        interval_s: float,
        render: Callable[[model.Report, list[str] | None], str] = html.render,
        stamp_every_s: float = 1.0,
    ) -> None:
        self.paths, self.zones, self.interval_s, self.render = paths, zones, interval_s, render
        self.stamp_every_s = stamp_every_s
        self._lock = threading.Lock()
        self._stamp_at = -1.0
        self._stamp = ""
        self._page_stamp: str | None = None
        self._page = ""
        self.renders = 0

    def version(self) -> str:
        """The current stamp, computed at most once per `stamp_every_s` (a second)."""
        with self._lock:
            now = time.monotonic()
            if self._stamp_at < 0 or now - self._stamp_at >= self.stamp_every_s:
                self._stamp, self._stamp_at = stamp(self.paths), now
            return self._stamp

    def page(self) -> str:
        """The page for the current stamp, with the script that reloads it on a change."""
        version = self.version()
        with self._lock:
            if self._page_stamp != version:
                self._page = self._build(version)
                self._page_stamp = version
                self.renders += 1
            return self._page

    def _build(self, version: str) -> str:
        script = REFRESH % {"version": version, "interval_ms": int(self.interval_s * 1000)}
        try:
            data = model.load([Path(p) for p in csv_files(self.paths)] or [Path(self.paths[0])])
            page = self.render(data, self.zones)
        except (ValueError, OSError) as error:
            # No run yet, or a file mid-write: say so, and reload when the files change.
            page = html.waiting_page(str(error))
        return page.replace("</body>", f"<script>{script}</script></body>", 1)


def handler(board: Board, hosts: tuple[str, ...]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "carbonmeter"

        def do_GET(self) -> None:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            if hosts and host not in hosts:
                # A name other than the one served: another site's page reaching us through
                # DNS rebinding, refused.
                self._send(HTTPStatus.FORBIDDEN, "text/plain", b"forbidden host\n")
            elif self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", board.page().encode())
            elif self.path == "/version":
                self._send(HTTPStatus.OK, "text/plain", board.version().encode())
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

        def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", POLICY)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a request per poll per viewer: not worth a line each

    return Handler


def serve(
    paths: list[str],
    zones: list[str] | None,
    host: str,
    port: int,
    interval_s: float,
    render: Callable[[model.Report, list[str] | None], str] = html.render,
) -> int:
    """Serves until interrupted; prints the address on stderr first. `render` makes the page
    (`carbonmeter report`'s filters and --group-by wrap `html.render`)."""
    board = Board(paths, zones, interval_s, render)
    loopback = host in LOOPBACK_HOSTS
    # On the loopback address only its own names are answered; bound to another address on
    # purpose, any name is.
    hosts = (*LOOPBACK_HOSTS, host) if loopback else ()
    server_class = ThreadingHTTPServer
    if ":" in host:

        class Server6(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        server_class = Server6
    server = server_class((host, port), handler(board, hosts))
    shown = f"[{host}]" if ":" in host else host
    print(
        f"carbonmeter: serving the report at http://{shown}:{server.server_address[1]}/ "
        f"(reloads within {interval_s:g} s of a change; Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
