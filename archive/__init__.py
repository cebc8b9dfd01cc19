"""Blocks and CIDs, DAG-CBOR, the LMDB store, files, signed records, bundles."""
