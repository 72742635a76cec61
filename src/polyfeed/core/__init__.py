"""The pure, sans-I/O core: wire messages, codec, frames, session, watchdog, backoff, books.

Everything here takes ``now`` as an argument and imports no asyncio, no ``time`` and no network
library (a test checks the folder). The I/O layer in :mod:`polyfeed.aio` feeds it inputs and acts
on its outputs.
"""
