"""The adapters: one module per outside service (token issuers, the Resource Registry, the queue,
the records tables, the blobs, the managed identity), each implementing a port of the core
(shared/core/ports.py). None imports another; what they share is in ``common``."""
