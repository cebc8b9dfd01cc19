"""craftnet: a federated, offline-first peer-to-peer network for a Digital Craft Archive."""

__version__ = "0.1.0"
