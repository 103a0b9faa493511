"""A test-only long-running component: an HTTP server on $PORT whose `/ready` answers 503 for its
first $READY_AFTER seconds and 200 after. Each start appends its pid to $MARKER, so a test can tell
how many processes were started and which one is up."""

import http.server
import os
import sys
import time

started = time.monotonic()
ready_after = float(os.environ.get("READY_AFTER", "0"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        ok = self.path == "/ready" and time.monotonic() - started >= ready_after
        self.send_response(200 if ok else 503)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
        """Quiet: one line per probe would bury the verdict."""


server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
with open(os.environ["MARKER"], "a") as marker:
    marker.write(f"{os.getpid()}\n")
print(f"serving on port {os.environ['PORT']} ({os.environ.get('VERSION', '-')})", file=sys.stderr)
server.serve_forever()
