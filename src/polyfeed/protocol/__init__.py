"""The sans-I/O Polymarket protocol: wire messages, codec, outbound frames, book hash, session."""
