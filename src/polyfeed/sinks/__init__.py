"""Recording a stream: the ``Sink`` protocol, the recorder loop, and the sinks.

``SqliteSink`` (standard library) is the default. ``ParquetSink`` and ``RedisSink`` need the
optional extras ``polyfeed[parquet]`` and ``polyfeed[redis]``; import them from their modules
(:mod:`polyfeed.sinks.parquet`, :mod:`polyfeed.sinks.redis`), which are the only places that
import pyarrow or redis.
"""

from __future__ import annotations

from polyfeed.sinks.base import (
    Record,
    Recorder,
    RecorderMetrics,
    SessionInfo,
    Sink,
    SinkError,
    SinkUnavailableError,
    to_record,
)
from polyfeed.sinks.sqlite import SqliteSink

__all__ = [
    "Record",
    "Recorder",
    "RecorderMetrics",
    "SessionInfo",
    "Sink",
    "SinkError",
    "SinkUnavailableError",
    "SqliteSink",
    "to_record",
]
