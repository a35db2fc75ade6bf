"""A local receiver for Apprise's json:// notifications, shared by the test layers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink:
    """An HTTP receiver on loopback that records each POST; `hold` makes it wait to answer."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                sink.received.append({"path": self.path,
                                      "content_type": self.headers.get("Content-Type"),
                                      "json": json.loads(body)})
                sink.arrived.set()
                sink.release.wait(timeout=30)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
