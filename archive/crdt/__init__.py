"""CRDT documents: archive entries that many hubs edit and that always converge.

* :mod:`~craftnet.archive.crdt.ops` - the operation records and their strict parser;
* :mod:`~craftnet.archive.crdt.sequence` - the RGA used for lists and text;
* :mod:`~craftnet.archive.crdt.state` - the pure fold of operations into a state;
* :mod:`~craftnet.archive.crdt.causal` - causal delivery and the in-memory replica;
* :mod:`~craftnet.archive.crdt.edit` - turning a user's edit into changes;
* :mod:`~craftnet.archive.crdt.documents` - documents kept in a store, with cached state.
"""
