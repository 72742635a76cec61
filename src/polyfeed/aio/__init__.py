"""The asyncio layer: transport seam, connections, supervisor, queue, REST, the public streams."""
