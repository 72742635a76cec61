"""FakePolymarket: a real Polymarket-speaking server on 127.0.0.1 for tests, demos and benchmarks.

One aiohttp server serves, on one port:

- ``/ws/market`` and ``/ws/user`` — the CLOB WebSocket channels (protocol.md §1-4, §8);
- ``GET /book``, ``POST /books``, ``GET /markets``, ``GET /markets/{condition_id}`` — CLOB REST;
- ``GET /gamma/markets`` — Gamma-style discovery (``gamma_url`` = ``rest_url + "/gamma"``);
- ``GET /auth/api-keys`` — CLOB L2-authenticated, to confirm credentials;
- ``/rtds``, ``/sports``, ``/polybolt`` — the RTDS, sports and PolyBolt sockets (protocol.md §5-6);
- ``POST /v1/heartbeats`` — the order-safety heartbeat (protocol.md §7).

The package holds one concern per module:

============== ==================================================================================
app            :class:`FakePolymarket`: app and routing, urls (``endpoints``), lifecycle, order
               flow and broadcast, handshake faults, test controls
connection     :class:`FakeConnection`: one WebSocket connection (market or user), its protocol
               behaviour, reader and writer
fault_state    what the faults applied to one connection do to it (arming, timers, filtering)
rest           CLOB REST, Gamma and ``/auth/api-keys`` handlers
auth           :class:`ApiCredentials` (what the fake accepts) and the L2 header check
log            :class:`GroundTruthLog`: every generated message, and per connection what went out
hub            :class:`SocketHub`: the open connections of one of the simpler sockets below
rtds           :class:`FakeRtds`: the RTDS socket and its topic freeze
sports         :class:`FakeSports`: the sports socket, server pings, ``stop_pinging``
polybolt       :class:`FakePolybolt`: the PolyBolt socket, ``seq`` jumps, drops, close codes
heartbeat      :class:`FakeHeartbeats`: the heartbeat endpoint, rejected ids, stalls
firehose       :func:`firehose`: a paced flood of realistic, verifiable market messages
============== ==================================================================================

Ground truth: :attr:`FakePolymarket.log` holds every message the server generated (sequence
number, assets, timestamp, raw JSON) and, per connection, which were handed to the transport and
which a fault withheld. Faults: see :mod:`polyfeed.testing.faults`.
"""

from __future__ import annotations

from polyfeed.testing.server.app import BurstResult, FakePolymarket, PreparedBurst
from polyfeed.testing.server.auth import ApiCredentials, AuthCheck
from polyfeed.testing.server.connection import CloseInfo, ConnectionState, FakeConnection
from polyfeed.testing.server.firehose import FirehoseResult, firehose
from polyfeed.testing.server.log import Delivery, GroundTruthLog, LoggedEvent, Origin, Outcome

__all__ = [
    "ApiCredentials",
    "AuthCheck",
    "BurstResult",
    "CloseInfo",
    "ConnectionState",
    "Delivery",
    "FakeConnection",
    "FakePolymarket",
    "FirehoseResult",
    "GroundTruthLog",
    "LoggedEvent",
    "Origin",
    "Outcome",
    "PreparedBurst",
    "firehose",
]
