"""polyfeed: live Polymarket WebSocket data that keeps flowing."""
