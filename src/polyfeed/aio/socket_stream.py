"""The base of the streams of the sockets beyond the CLOB (RTDS, PolyBolt, sports).

Each such stream is the CLOB streams' machinery (:class:`polyfeed.aio.stream._Stream`: one
supervisor, one connection runner, backoff, gap and lifecycle events) driving its own pure
session; :class:`SocketStream` holds what they share (settings from ``profile`` or ``config``,
the session factory), :class:`SpecStream` adds subscriptions given as spec values or strings
and known to the session by their ``key``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from polyfeed.aio.clock import Clock
from polyfeed.aio.stream import _resolve_config, _Stream
from polyfeed.aio.supervisor import Connector, SessionFactory
from polyfeed.config import StreamConfig
from polyfeed.core.channel import ChannelSession
from polyfeed.credentials import Credentials

__all__ = ["SocketStream", "SpecStream", "StreamOptions"]

EventT = TypeVar("EventT")


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


SpecT = TypeVar("SpecT", bound=_Keyed)


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """What a socket stream's constructor passes on to the shared machinery, as given."""

    url: str
    profile: str
    config: StreamConfig | None
    clock: Clock | None
    rng: Callable[[], float] | None
    connector: Connector
    credentials: Credentials | None = None


class SocketStream(_Stream[EventT]):
    """A stream whose connections each get a fresh session from :meth:`_new_session`."""

    def __init__(self, ids: Iterable[str], options: StreamOptions) -> None:
        super().__init__(
            ids,
            url=options.url,
            config=_resolve_config(options.profile, options.config, None),
            credentials=options.credentials,
            clock=options.clock,
            rng=options.rng,
            connector=options.connector,
        )

    def _new_session(self, connection_id: int) -> ChannelSession:
        """The protocol session of connection ``connection_id``."""
        raise NotImplementedError

    def _session_factory(self) -> SessionFactory:
        return self._new_session


class SpecStream(SocketStream[EventT], Generic[EventT, SpecT]):
    """A stream of subscriptions given as spec values or strings (:meth:`_parse`).

    The specs by key outlive the connections: each session reads them from :attr:`_specs`.
    """

    def __init__(self, items: Iterable[str | SpecT] | str | SpecT, options: StreamOptions) -> None:
        self._specs: dict[str, SpecT] = {s.key: s for s in self._coerce(items)}
        super().__init__(list(self._specs), options)

    @staticmethod
    def _parse(text: str) -> SpecT:
        """The spec a string names."""
        raise NotImplementedError

    def _coerce(self, items: Iterable[str | SpecT] | str | SpecT) -> list[SpecT]:
        # One spec or string alone is one subscription, not an iterable of them.
        if isinstance(items, str) or not isinstance(items, Iterable):
            items = [items]
        return [self._parse(i) if isinstance(i, str) else i for i in items]

    @property
    def specs(self) -> dict[str, SpecT]:
        """The subscriptions by key (a copy)."""
        return dict(self._specs)

    async def subscribe(self, ids: Iterable[str | SpecT]) -> list[str]:
        """Subscribe more live; returns the keys that were new."""
        specs = self._coerce(ids)
        for spec in specs:
            self._specs.setdefault(spec.key, spec)
        return await super().subscribe([s.key for s in specs])

    async def unsubscribe(self, ids: Iterable[str | SpecT]) -> list[str]:
        """Unsubscribe live; returns the keys that were subscribed."""
        removed = await super().unsubscribe([s.key for s in self._coerce(ids)])
        for key in removed:
            self._specs.pop(key, None)
        return removed
