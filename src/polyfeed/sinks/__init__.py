"""Recording a stream: the ``Sink`` protocol, the recorder loop, and the sinks.

``SqliteSink`` (standard library) is the default. ``ParquetSink`` and ``RedisSink`` need the
optional extras ``polyfeed[parquet]`` and ``polyfeed[redis]``; import them from their modules
(:mod:`polyfeed.sinks.parquet`, :mod:`polyfeed.sinks.redis`), which are the only places that
import pyarrow or redis.
"""

from __future__ import annotations

from polyfeed.errors import SinkError, SinkUnavailableError
from polyfeed.sinks.base import (
    RESTART_GAP_REASON,
    Record,
    Recorder,
    RecorderMetrics,
    RecordSource,
    Resume,
    SessionInfo,
    Sink,
    from_record,
    to_record,
)
from polyfeed.sinks.sqlite import SqliteSink

__all__ = [
    "RESTART_GAP_REASON",
    "Record",
    "RecordSource",
    "Recorder",
    "RecorderMetrics",
    "Resume",
    "SessionInfo",
    "Sink",
    "SinkError",
    "SinkUnavailableError",
    "SqliteSink",
    "from_record",
    "to_record",
]
