"""The asyncio layer: transport seam, one connection's task group, the reconnecting supervisor."""
