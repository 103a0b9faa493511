"""HTTP/1.1 framing for the router: just enough parsing to forward a message unchanged and know where it ends.

The router never decodes a body: it needs each message's head (method, target, status, framing, the
hop-by-hop headers it must not forward) and the byte where the message ends, so that a keep-alive
connection can carry the next one. Bodies are framed by Content-Length or chunked encoding; a response
with neither ends when the upstream closes its connection.
"""

from __future__ import annotations

HEAD_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 8 * 1024

# Headers that describe one connection, not the message (RFC 9110 7.6.1), plus Expect: the router
# answers `100 Continue` itself, having the whole body before it forwards anything.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade", b"expect"})

NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)

REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 413: b"Content Too Large",
           431: b"Request Header Fields Too Large", 502: b"Bad Gateway", 503: b"Service Unavailable",
           504: b"Gateway Timeout"}


class BadMessage(ValueError):
    """A message the router cannot frame: answered with 400 (a client's) or 502 (an upstream's)."""


class RequestHead:
    """A parsed request head and what the router forwards in its place."""

    __slots__ = ("method", "target", "length", "chunked", "close", "expect_continue", "forward")

    def __init__(self, head: bytes) -> None:
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise BadMessage(f"bad request line {lines[0][:100]!r}")
        self.method, self.target, version = parts
        self.length = 0
        self.chunked = False
        self.close = version == b"HTTP/1.0"
        self.expect_continue = False
        has_length = strip = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise BadMessage(f"bad header line {line[:100]!r}")
            name = name.strip().lower()
            if name == b"content-length":
                value = value.strip()
                if not value.isdigit():
                    raise BadMessage(f"bad Content-Length {value[:40]!r}")
                self.length, has_length = int(value), True
            elif name == b"transfer-encoding":
                if value.strip().lower() != b"chunked":
                    raise BadMessage(f"unsupported Transfer-Encoding {value.strip()[:40]!r}")
                self.chunked = True
            elif name in HOP_BY_HOP:
                strip = True
                tokens = value.strip().lower()
                if name == b"connection":
                    if b"close" in tokens:
                        self.close = True
                    elif b"keep-alive" in tokens:
                        self.close = False
                elif name == b"expect" and tokens == b"100-continue":
                    self.expect_continue = True
        if has_length and self.chunked:  # the classic request-smuggling ambiguity: refuse it
            raise BadMessage("both Content-Length and Transfer-Encoding")
        if strip:
            kept = [lines[0], *(line for line in lines[1:]
                                if line.partition(b":")[0].strip().lower() not in HOP_BY_HOP)]
            self.forward = b"\r\n".join(kept) + HEAD_END
        else:
            self.forward = head


def parse_response_head(head: bytes, request_method: bytes) -> tuple[int, int, int, bool, bytes]:
    """(status, framing, length, close, head): `head` is the status line and the end-to-end headers, each
    line ending in CRLF but without the empty line that ends a head, so the router appends its own."""
    line_end = head.find(b"\r\n")
    status_line = head[:line_end]
    if not status_line.startswith(b"HTTP/1.") or len(status_line) < 12 or not status_line[9:12].isdigit():
        raise BadMessage(f"bad status line {status_line[:100]!r}")
    status = int(status_line[9:12])
    close = status_line.startswith(b"HTTP/1.0")
    length = -1
    chunked = strip = False
    lines = head[line_end + 2:-4].split(b"\r\n") if len(head) > line_end + 4 else []
    for line in lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit():
                raise BadMessage(f"bad Content-Length {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.strip().lower().endswith(b"chunked")
        elif name in HOP_BY_HOP:
            strip = True
            if name == b"connection":
                tokens = value.strip().lower()
                close = b"close" in tokens or (close and b"keep-alive" not in tokens)
    if strip:
        rest = b"".join(line + b"\r\n" for line in lines
                        if line.partition(b":")[0].strip().lower() not in HOP_BY_HOP)
    else:
        rest = head[line_end + 2:-2]
    if request_method == b"HEAD" or status < 200 or status in (204, 304):
        framing = NO_BODY
    elif chunked:
        framing = CHUNKED
    elif length >= 0:
        framing = LENGTH
    else:
        framing, close = UNTIL_CLOSE, True
    return status, framing, length, close, status_line + b"\r\n" + rest


class ChunkedScanner:
    """Finds where a chunked body ends, fed the body in pieces as they arrive (the pieces are forwarded
    as they are; only the chunk-size lines are read)."""

    __slots__ = ("_line", "_remaining", "_state")

    SIZE, DATA, DATA_END, TRAILER = range(4)

    def __init__(self) -> None:
        self._line = b""
        self._remaining = 0
        self._state = self.SIZE

    def feed(self, data: bytes | bytearray, start: int = 0) -> int:
        """The index in `data` just past the body's end, or -1 while the body goes on."""
        i, n = start, len(data)
        while i < n:
            if self._state == self.DATA:
                take = min(self._remaining, n - i)
                i += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = self.DATA_END
                continue
            newline = data.find(b"\n", i)
            if newline < 0:
                self._line += bytes(data[i:])
                if len(self._line) > MAX_CHUNK_LINE:
                    raise BadMessage("chunk line too long")
                return -1
            line = (self._line + bytes(data[i:newline])).rstrip(b"\r")
            self._line = b""
            i = newline + 1
            if self._state == self.SIZE:
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BadMessage(f"bad chunk size {size_text[:40]!r}") from None
                if size:
                    self._state, self._remaining = self.DATA, size
                else:
                    self._state = self.TRAILER
            elif self._state == self.DATA_END:
                if line:
                    raise BadMessage("chunk data longer than its size")
                self._state = self.SIZE
            elif not line:  # the empty line after the trailer fields
                return i
        return -1


def simple_response(status: int, body: bytes = b"", close: bool = False,
                    content_type: bytes = b"application/json", headers: bytes = b"") -> bytes:
    """A complete response the router writes itself (errors, its own health and metrics); `headers`
    are more header lines, each ending in CRLF."""
    head = (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s"
            % (status, REASONS.get(status, b"Status"), content_type, len(body), headers))
    return head + (b"connection: close\r\n\r\n" if close else b"\r\n") + body
