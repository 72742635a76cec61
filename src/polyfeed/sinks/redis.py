"""Redis Streams sink (redis-py's asyncio client; the optional extra ``polyfeed[redis]``).

Keys (``prefix`` default ``polyfeed``, ``channel`` is ``market`` or ``user``)::

    {prefix}:{channel}                 key_by="channel": every event of the channel
    {prefix}:{channel}:{market}        key_by="market": the events of one market (condition id)
    {prefix}:{channel}:control         key_by="market": events of no market (connected, gaps,
                                       book_invalidated, notices, ...)
    {prefix}:{channel}:gaps            every gap again, so a consumer can list the holes
    {prefix}:{channel}:state           hash: the last recorded times (for the downtime gap)

Each stream entry has the fields ``event_type``, ``asset_id``, ``assets`` (JSON array),
``market``, ``server_ts`` (epoch ms, empty when none), ``received`` (epoch seconds) and ``json``
(the event). Streams are trimmed with ``XADD MAXLEN ~ maxlen`` (None: never trimmed; the
``gaps`` stream is never trimmed). A batch is one ``MULTI``/``EXEC``: all of it or none.

When Redis is unreachable, writes raise :class:`SinkUnavailableError` and the recorder buffers,
alarms and retries; a batch whose ``EXEC`` reply was lost may then be written twice (consumers
de-duplicate on the entry's ``json``, or tolerate it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, FieldT

from polyfeed.errors import ConfigError, SinkError, SinkUnavailableError
from polyfeed.sinks.base import Record, Resume, SessionInfo

KeyBy = Literal["channel", "market"]

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)


class RedisSink:
    """Records into Redis Streams at ``url`` (``redis://host:port/db``); see the module docs.

    ``timeout``: seconds for connecting and for each batch before it counts as unavailable.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        key_by: KeyBy | str = "channel",
        prefix: str = "polyfeed",
        maxlen: int | None = 1_000_000,
        timeout: float = 2.0,
    ) -> None:
        if key_by not in ("channel", "market"):
            raise ConfigError(f"key_by must be 'channel' or 'market', got {key_by!r}")
        if maxlen is not None and maxlen < 1:
            raise ConfigError("maxlen must be >= 1 or None")
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"not a redis:// URL: {url!r}")
        self.url = url
        self.key_by = key_by
        self.prefix = prefix
        self.maxlen = maxlen
        self.timeout = timeout
        self._client: aioredis.Redis | None = None
        self._channel = "market"
        self._session: SessionInfo | None = None
        self.entries_written = 0

    def __repr__(self) -> str:
        # The URL may carry a password: only its host part is shown.
        host = self.url.rsplit("@", 1)[-1]
        state = "open" if self._client is not None else "closed"
        return f"<RedisSink {host} {state} key_by={self.key_by} entries={self.entries_written}>"

    def stream_key(self, record: Record) -> str:
        """The stream a record goes to."""
        base = f"{self.prefix}:{self._channel}"
        if self.key_by == "channel":
            return base
        return f"{base}:{record.market}" if record.market else f"{base}:control"

    @property
    def gaps_key(self) -> str:
        """The stream that lists every gap."""
        return f"{self.prefix}:{self._channel}:gaps"

    @property
    def state_key(self) -> str:
        """The hash with the last recorded times."""
        return f"{self.prefix}:{self._channel}:state"

    async def open(self, session: SessionInfo) -> Resume | None:
        """Connect; what the previous recorder on these keys left (None for none)."""
        self._channel = session.channel
        self._session = session
        self._client = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry_on_error=[],
            decode_responses=True,
        )
        try:
            state = await self._client.hgetall(self.state_key)
            await self._client.hset(
                self.state_key,
                mapping={
                    "ids": json.dumps(list(session.ids)),
                    "started": repr(session.started),
                    "ended": "",
                },
            )
        except _UNAVAILABLE as exc:
            await self._release()
            raise SinkUnavailableError(f"redis unreachable: {exc}") from exc
        except RedisError as exc:
            await self._release()
            raise SinkError(f"redis: {exc}") from exc
        return _resume({str(k): str(v) for k, v in state.items()})

    async def write(self, records: Sequence[Record]) -> None:
        """Add the batch to its streams in one MULTI/EXEC."""
        client = self._client
        if client is None:
            raise SinkError("redis sink is not open")
        last_received = max(record.received for record in records)
        server_times = [
            record.server_ts
            for record in records
            if record.server_ts is not None and record.server_ts > 10**11
        ]
        try:
            async with client.pipeline(transaction=True) as pipe:
                for record in records:
                    fields: dict[FieldT, EncodableT] = {
                        "event_type": record.event_type,
                        "asset_id": record.asset_id or "",
                        "assets": json.dumps(list(record.assets)),
                        "market": record.market or "",
                        "server_ts": "" if record.server_ts is None else record.server_ts,
                        "received": repr(record.received),
                        "json": record.json,
                    }
                    pipe.xadd(self.stream_key(record), fields, maxlen=self.maxlen)
                    if record.gap is not None:
                        pipe.xadd(self.gaps_key, fields)
                state: dict[FieldT, EncodableT] = {"last_received": repr(last_received)}
                if server_times:
                    state["last_server_ts"] = str(max(server_times))
                pipe.hset(self.state_key, mapping=state)
                await pipe.execute()
        except _UNAVAILABLE as exc:
            raise SinkUnavailableError(f"redis unavailable: {exc}") from exc
        except RedisError as exc:
            raise SinkError(f"redis: {exc}") from exc
        self.entries_written += len(records)

    async def aclose(self, ended: float) -> None:
        """Mark the run ended (when Redis is reachable) and disconnect."""
        client = self._client
        if client is None:
            return
        try:
            await client.hset(self.state_key, "ended", repr(ended))
        except RedisError:
            pass  # unreachable at the end: the next run starts its gap at the last data instead
        finally:
            await self._release()

    async def _release(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _resume(state: dict[str, str]) -> Resume | None:
    if not state:
        return None
    times = [float(state[k]) for k in ("last_received", "ended", "started") if state.get(k)]
    if not times:
        return None
    last_seen = max(times)
    if state.get("last_server_ts"):
        last_seen = min(last_seen, int(state["last_server_ts"]) / 1000.0)
    ids = json.loads(state.get("ids") or "[]")
    return Resume(last_seen=last_seen, assets=tuple(str(i) for i in ids))
