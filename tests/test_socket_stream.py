"""SocketStream and SpecStream: what the RTDS, PolyBolt and sports streams share (no socket)."""

from __future__ import annotations

from typing import Any

from polyfeed.aio.polybolt_stream import PolyboltStream
from polyfeed.aio.rtds_stream import RtdsStream
from polyfeed.aio.socket_stream import SocketStream
from polyfeed.aio.sports_stream import SportsStream
from polyfeed.config import StreamConfig
from polyfeed.core.channel import SessionBase
from polyfeed.core.polybolt import PolyboltSession, PolyboltSubscription
from polyfeed.core.rtds import RtdsSession, RtdsSubscription
from polyfeed.core.sports import SportsSession
from polyfeed.credentials import Credentials


def test_one_spec_or_string_alone_is_one_subscription() -> None:
    assert list(RtdsStream("comments").specs) == ["comments:*"]
    alone: Any = RtdsSubscription("crypto_prices", "update")  # typed as an iterable; taken alone
    assert list(RtdsStream(alone).specs) == ["crypto_prices:update"]
    assert list(PolyboltStream("price.crypto").specs) == ["price.crypto"]
    spec = PolyboltSubscription("price.equity", {"symbol": "AAPL"})
    assert PolyboltStream([spec, "price.crypto"]).specs == {
        spec.key: spec,
        "price.crypto": PolyboltSubscription("price.crypto"),
    }


def test_specs_is_a_copy() -> None:
    stream = RtdsStream(["comments"])
    stream.specs.clear()
    assert list(stream.specs) == ["comments:*"]


async def test_subscribe_and_unsubscribe_keep_the_specs_in_step_before_the_start() -> None:
    stream = RtdsStream(["comments"])
    assert await stream.subscribe(["comments", RtdsSubscription("activity", "trades")]) == [
        "activity:trades"
    ]
    assert set(stream.specs) == {"comments:*", "activity:trades"}
    assert await stream.unsubscribe(["comments", "nothing"]) == ["comments:*"]
    assert list(stream.specs) == ["activity:trades"]


def test_each_connection_gets_a_fresh_session_of_the_stream_s_socket() -> None:
    config = StreamConfig.from_profile("hft")
    made = [
        RtdsStream(["comments"], config=config)._session_factory()(3),
        PolyboltStream(["price.crypto"], config=config)._session_factory()(3),
        SportsStream(config=config)._session_factory()(3),
    ]
    assert [type(s) for s in made] == [RtdsSession, PolyboltSession, SportsSession]
    for session in made:
        assert isinstance(session, SessionBase) and session.connection_id == 3
    assert RtdsStream(config=config).config is config


def test_the_constructor_options_reach_the_shared_machinery() -> None:
    url = "ws://127.0.0.1:9/x"
    hft = StreamConfig.from_profile("hft")
    credentials = Credentials(api_key="k", secret="s", passphrase="p")
    streams: list[SocketStream[Any]] = [
        RtdsStream(["comments"], url=url, profile="hft"),
        PolyboltStream(["price.crypto"], url=url, profile="hft", credentials=credentials),
        SportsStream(url=url, profile="hft"),
    ]
    for stream in streams:
        assert stream.url == url and stream.config == hft
    assert streams[1]._credentials is credentials
    assert streams[0]._credentials is None
