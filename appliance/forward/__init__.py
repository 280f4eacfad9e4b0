"""Background work off the ingest path: verified lossless compression now; forwarding rules later (A7)."""
