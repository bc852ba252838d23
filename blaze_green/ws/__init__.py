"""WebSocket engine: sans-I/O frame codec, handshake checks, sessions and the registry."""
