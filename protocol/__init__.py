"""Sans-IO protocol machines: bytes and events in, bytes and commands out."""
