"""The I/O shell: libp2p host, stream handlers, HTTP API, config and lifecycle."""
