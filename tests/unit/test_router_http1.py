"""The router's HTTP/1.1 framing: what it forwards of a head, and where a message ends."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "components" / "router"))
from http1 import (  # noqa: E402
    CHUNKED,
    LENGTH,
    NO_BODY,
    UNTIL_CLOSE,
    BadMessage,
    ChunkedScanner,
    RequestHead,
    parse_response_head,
    simple_response,
)


def test_a_plain_request_head_is_forwarded_as_it_came() -> None:
    raw = b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n"
    head = RequestHead(raw)
    assert (head.method, head.target, head.length, head.chunked, head.close) == (
        b"POST", b"/v2/models/m/infer", 12, False, False)
    assert head.forward is raw


def test_connection_headers_stay_on_the_client_side() -> None:
    raw = (b"POST /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\nKeep-Alive: timeout=5\r\n"
           b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    head = RequestHead(raw)
    assert head.close and head.expect_continue
    assert head.forward == b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"


@pytest.mark.parametrize(("raw", "close"), [
    (b"GET / HTTP/1.0\r\n\r\n", True),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", True),
])
def test_whether_the_client_keeps_its_connection(raw: bytes, close: bool) -> None:
    assert RequestHead(raw).close is close


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET / SPDY/3\r\n\r\n",
    b"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
])
def test_requests_the_router_cannot_frame_safely_are_refused(raw: bytes) -> None:
    with pytest.raises(BadMessage):
        RequestHead(raw)


def test_a_response_head_gives_status_framing_and_the_head_to_forward() -> None:
    raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 44\r\n\r\n"
    assert parse_response_head(raw, b"POST") == (
        200, LENGTH, 44, False, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 44\r\n")
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    assert parse_response_head(chunked, b"POST") == (
        200, CHUNKED, -1, False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n")
    closing = b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\ncontent-length: 0\r\n\r\n"
    assert parse_response_head(closing, b"POST")[:4] == (500, LENGTH, 0, True)
    assert parse_response_head(b"HTTP/1.1 200 OK\r\n\r\n", b"GET") == (200, UNTIL_CLOSE, -1, True, b"HTTP/1.1 200 OK\r\n")
    assert parse_response_head(raw, b"HEAD")[1] == NO_BODY
    assert parse_response_head(b"HTTP/1.1 204 No Content\r\n\r\n", b"POST")[1] == NO_BODY
    with pytest.raises(BadMessage):
        parse_response_head(b"HTTP/1.1 OK\r\n\r\n", b"GET")


BODY = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n"


@pytest.mark.parametrize("piece", [1, 2, 3, 7, len(BODY)])
def test_the_end_of_a_chunked_body_is_found_however_it_is_split(piece: int) -> None:
    scanner = ChunkedScanner()
    data = BODY + b"NEXT"
    ends = []
    for start in range(0, len(data), piece):
        end = scanner.feed(data[start:start + piece])
        if end >= 0:
            ends.append(start + end)
            break
    assert ends == [len(BODY)]


def test_a_chunked_body_fed_from_an_offset_of_a_buffer() -> None:
    buffer = bytearray(b"HEAD" + BODY)
    assert ChunkedScanner().feed(buffer, 4) == len(buffer)


@pytest.mark.parametrize("body", [b"zz\r\n", b"3\r\nabcd\r\n0\r\n\r\n"])
def test_a_broken_chunked_body_is_refused(body: bytes) -> None:
    with pytest.raises(BadMessage):
        ChunkedScanner().feed(body)


def test_the_routers_own_answers_are_complete_responses() -> None:
    assert simple_response(503, b"{}", close=True) == (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
        b"connection: close\r\n\r\n{}")
    assert simple_response(502, headers=b"x-loom-revision: v2\r\n") == (
        b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: 0\r\n"
        b"x-loom-revision: v2\r\n\r\n")
