"""Loom's writer of Feast's Redis online store: the rows a materialization chose, encoded by
`feast_internals.OnlineRowEncoder` in exactly the layout Feast's `RedisOnlineStore` writes (which
`feast_online` and the model servers read), sent as raw RESP HSETs on one connection, a few thousand
per round trip (a non-transactional pipeline).

Why not Feast's own path: `import feast` alone takes ~5 s and ~800 MiB, and its conversion builds a
proto object per value. One deliberate difference: Feast passes an integer column that has nulls
through float64 (pandas), which rounds values beyond 2**53; this writer keeps them exact.

tests/integration/features/test_materialize_layout.py holds every key and field of it byte for byte
equal to what `FeatureStore.materialize` writes; a Feast upgrade that changes the layout fails there."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from loom.drivers.feast_internals import OnlineRowEncoder, ViewLayout, key_pattern, redis_connection, timestamp_field

if TYPE_CHECKING:
    import pyarrow as pa


def open_client(connection: str) -> Any:
    """A redis-py client for a Feast connection string, as Feast reads it for a plain Redis."""
    import redis

    return redis.Redis(**redis_connection(connection))


class RedisWriter:
    """Writes entity rows (join keys, features, event time) of one view, a pipeline per batch."""

    def __init__(self, client: Any, layout: ViewLayout, timestamp_column: str) -> None:
        self._client = client
        self._encoder = OnlineRowEncoder(layout, timestamp_column)
        fields = self._encoder.fields
        self._headers = [b"$%d\r\n%s\r\n" % (len(f), f) for f in fields]
        self._command = b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * len(fields))

    def write(self, batches: Iterable[pa.RecordBatch], batch_rows: int = 4000) -> int:
        """Write every row of the batches (one row per entity: the caller chose them); the rows written."""
        written = 0
        pool = self._client.connection_pool
        conn = pool.get_connection()
        try:
            for batch in batches:
                for offset in range(0, batch.num_rows, batch_rows):
                    chunk = batch.slice(offset, batch_rows)
                    conn.send_packed_command([self._commands(chunk)], check_health=False)
                    for _ in range(chunk.num_rows):
                        reply = conn.read_response()
                        if isinstance(reply, Exception):
                            raise reply
                    written += chunk.num_rows
        except BaseException:
            conn.disconnect()  # replies may be left unread: never hand this connection out again
            raise
        finally:
            pool.release(conn)
        return written

    def _commands(self, batch: pa.RecordBatch) -> bytes:
        keys = self._encoder.keys(batch)
        columns = self._encoder.values(batch)
        parts: list[bytes] = []
        append = parts.append
        headers, command = self._headers, self._command
        for i, key in enumerate(keys):
            append(command)
            append(b"$%d\r\n%s\r\n" % (len(key), key))
            for header, column in zip(headers, columns):
                value = column[i]
                append(header)
                append(b"$%d\r\n%s\r\n" % (len(value), value))
        return b"".join(parts)


# One SCAN page and the HEXISTS of each key it matched, counted inside Redis: a round trip per page
# and one integer back, where sending the keys to the client and a HEXISTS for each back cost seconds
# for a million keys. Redis runs one page at a time, so a page blocks other clients for milliseconds.
_COUNT_PAGE = """
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local n = 0
for _, key in ipairs(page[2]) do n = n + redis.call('HEXISTS', key, ARGV[4]) end
return {page[1], n}
"""


def online_row_count(client: Any, layout: ViewLayout, page: int = 20_000) -> int:
    """Entity rows of the view in Redis: keys of the project with its join keys that carry its
    `_ts:<view>` field (what `feast_store.online_row_count` counts, without Feast)."""
    count_page = client.register_script(_COUNT_PAGE)
    pattern, ts_field = key_pattern(layout), timestamp_field(layout.view)
    cursor, count = b"0", 0
    while True:
        cursor, found = count_page(args=[cursor, pattern, page, ts_field])
        count += found
        if cursor == b"0":
            return count
