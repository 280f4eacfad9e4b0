"""The archive domain: ingest, storage, index, search, retrieve, lossless compression, integrity."""
