"""Whatever a peer sends, the engine answers with commands, never an exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_helpers import Hub, Network, hello_from, make_record

from craftnet.archive.cid import Cid
from craftnet.protocol.events import PeerId, StreamEnded
from craftnet.protocol.framing import encode_frame
from craftnet.protocol.messages import (
    RANGE_MODES,
    Block,
    DontHave,
    End,
    Have,
    Message,
    Recon,
    ReconRange,
    Want,
)

CIDS = [Cid.of(bytes([i])) for i in range(4)]
MALLORY = PeerId("mallory")

cids = st.lists(st.sampled_from(CIDS), min_size=1, max_size=3).map(tuple)
reqs = st.integers(0, 5)
ranges = st.lists(
    st.builds(
        ReconRange,
        st.one_of(st.none(), st.binary(min_size=1, max_size=10)),
        st.sampled_from(sorted(RANGE_MODES)),
        st.binary(max_size=40),
    ),
    max_size=4,
).map(tuple)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Want, reqs, cids, st.booleans()),
    st.builds(Have, reqs, cids),
    st.builds(DontHave, reqs, cids),
    st.builds(End, reqs),
    st.builds(Block, reqs, st.sampled_from(CIDS), st.binary(max_size=8)),
    st.builds(
        Recon,
        st.integers(0, 3),
        st.booleans(),
        st.integers(0, 3),
        st.sampled_from([b"", bytes(16)]),
        ranges,
        st.lists(st.binary(min_size=9, max_size=44), max_size=2).map(tuple),
        st.booleans(),
    ),
)


def _network(dialler_is_mallory: bool) -> tuple[Network, Hub]:
    net = Network()
    hub = net.add(Hub("hub-a", 1))
    for n in range(20):
        hub.add_record(make_record(hub.key, n))
    net.add_raw(MALLORY)
    if dialler_is_mallory:
        net.connect(MALLORY, hub.peer)
    else:
        net.connect(hub.peer, MALLORY)
    net.inject(MALLORY, hub.peer, hello_from(MALLORY))
    net.settle(0.1)
    return net, hub


@settings(max_examples=40)
@given(st.booleans(), st.lists(messages, max_size=12), st.booleans())
def test_random_valid_messages_never_crash_the_engine(
    mallory_dialled: bool, sent: list[Message], end: bool
) -> None:
    net, hub = _network(mallory_dialled)
    for message in sent:
        net.inject(MALLORY, hub.peer, encode_frame(message))
    if end:
        net.queue.append((hub.peer, StreamEnded(MALLORY)))
    net.run(until=net.now + 1000)


@settings(max_examples=40)
@given(st.lists(st.binary(max_size=64), max_size=8), st.booleans())
def test_random_bytes_never_crash_the_engine(chunks: list[bytes], gossip: bool) -> None:
    net, hub = _network(True)
    for chunk in chunks:
        net.inject(MALLORY, hub.peer, chunk, gossip=gossip)
    net.run(until=net.now + 1000)
    # Cut off only for a reason that is on Mallory's record.
    assert net.connected(MALLORY, hub.peer) or hub.engine.scores.offence_counts(MALLORY)


@settings(max_examples=15)
@given(
    st.sets(st.integers(0, 60), max_size=40),
    st.sets(st.integers(0, 60), max_size=40),
    st.integers(60, 6000),
)
def test_hubs_converge_whatever_byte_the_link_dies_at(
    only_a: set[int], only_b: set[int], cut: int
) -> None:
    net = Network()
    a = net.add(Hub("hub-a", 1))
    b = net.add(Hub("hub-b", 2))
    for n in only_a:
        a.add_record(make_record(a.key, n))
    for n in only_b:
        b.add_record(make_record(a.key, n))
    net.cut_after[frozenset((a.peer, b.peer))] = cut
    net.connect(a.peer, b.peer)
    net.run(until=120.0)  # the dialler redials after the cut
    assert a.record_keys() == b.record_keys()
    assert a.blocks.blocks == b.blocks.blocks
