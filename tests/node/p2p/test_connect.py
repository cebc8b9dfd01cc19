"""Hubs that dial each other at the same moment (a restarted hub dials its bootstrap
members while they redial it) agree on one sync stream and link at once."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import trio

from tests.node.p2p.helpers import make_hubs, start_hub, wait_for


def test_hubs_dialling_each_other_at_once_link_within_5_s(tmp_path: Path) -> None:
    alliance, setups = make_hubs(tmp_path, 5)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            hubs = [await start_hub(nursery, setup, alliance) for setup in setups]
            # Every pair dials each other in the same instant.
            for a, b in itertools.combinations(hubs, 2):
                a.driver.dial(b.addrs[0])
                b.driver.dial(a.addrs[0])
            await wait_for(
                lambda: all(len(h.engine.ready_peers()) == len(hubs) - 1 for h in hubs),
                5,
                "every hub linked to every other",
            )
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in setups:
        setup.store.close()


def test_a_dial_does_not_wait_for_the_happy_eyeballs_head_start() -> None:
    # py-libp2p waits this long after each dial unless the dial fails (a success does not
    # end the wait); craftnet sets it to zero. If an upgrade renames it, every dial gets
    # 250 ms slower without a word: this test says so first.
    from libp2p.network import swarm

    import craftnet.node.p2p.libp2p_net  # noqa: F401  (sets it)

    assert swarm._HAPPY_EYEBALLS_DELAY == 0


def test_gossip_seqnos_run_on_across_a_restart() -> None:
    # A hub keeps its peer id when it restarts, and GossipSub names a message by its
    # sender's peer id and seqno: peers drop a message whose name they saw in the last two
    # minutes. py-libp2p's Pubsub numbers messages from ``counter`` (upstream: whole
    # seconds); an instance with the same key, made at once after the first sent a
    # thousand messages, must number past them.
    from craftnet.node.p2p.libp2p_net import Libp2pNetwork

    seed = bytes(32)
    first = Libp2pNetwork(seed, "/craftnet/announce/1/test").pubsub
    sent = [int.from_bytes(first._next_seqno(), "big") for _ in range(1000)]
    again = Libp2pNetwork(seed, "/craftnet/announce/1/test").pubsub
    assert again.host.get_id() == first.host.get_id()
    assert int.from_bytes(again._next_seqno(), "big") > max(sent)


def test_a_write_of_write_size_bytes_is_one_noise_message() -> None:
    # The sync writer cuts big sends into pieces of Libp2pStream.write_size, derived from
    # py-libp2p's yamux frame limit and Noise's message limit: a full yamux frame (65,536
    # bytes with its header) went out as two Noise messages (65,519 + 17 bytes), each
    # encrypted, sent, received and decrypted on its own. If an upgrade changes either
    # limit (or the layering), this fails instead of the bench quietly slowing down.
    import os
    import struct

    from craftnet.node.p2p.libp2p_net import WRITE_SIZE, Libp2pNetwork
    from craftnet.node.p2p.net import ByteStream
    from craftnet.protocol.events import PeerId
    from tests.node.p2p.helpers import LOOPBACK

    mib = 1024 * 1024
    a = Libp2pNetwork(os.urandom(32), "/test")
    b = Libp2pNetwork(os.urandom(32), "/test")
    got = bytearray()

    async def sink(peer: PeerId, stream: ByteStream) -> None:
        # A window far above what the test sends: yamux never cuts a frame short
        # for want of room, whatever the order in which the tasks run.
        await stream.open_window()
        while data := await stream.read(mib):
            got.extend(data)

    b.set_stream_handler(sink)
    counts: list[int] = []

    async def main() -> None:
        async with a.running(list(LOOPBACK)), b.running(list(LOOPBACK)):
            peer = await a.connect(b.listen_addrs()[0])
            stream = await a.open_stream(peer)
            assert stream.write_size == WRITE_SIZE == 65507
            yamux_stream = stream._stream.muxed_stream
            with trio.fail_after(10):
                while yamux_stream.send_window < 8 * mib:  # the sink's window is open
                    await trio.sleep(0.01)
            noise = yamux_stream.conn.secured_conn.conn
            encrypt = noise.encrypt
            left = [0]  # bytes of our stream's current DATA frame still to be encrypted
            ours = [0]  # Noise messages that carried them

            def counted(plain: bytes) -> bytes:
                # Noise encrypts each message it sends once: count those of our frames.
                if left[0] <= 0 and len(plain) >= 12:
                    _, kind, _, sid, length = struct.unpack("!BBHII", plain[:12])
                    if kind == 0 and sid == yamux_stream.stream_id:
                        left[0] = 12 + length
                if left[0] > 0:
                    ours[0] += 1
                    left[0] -= len(plain)
                return bytes(encrypt(plain))

            noise.encrypt = counted
            payload = os.urandom(mib)
            cases = (
                [payload[:WRITE_SIZE]],
                [payload[: WRITE_SIZE + 1]],
                [payload],
                [payload[i : i + WRITE_SIZE] for i in range(0, mib, WRITE_SIZE)],
            )
            for pieces in cases:
                got.clear()
                ours[0] = 0
                whole = b"".join(pieces)
                for piece in pieces:
                    await stream.write(memoryview(piece))
                with trio.fail_after(10):
                    while len(got) < len(whole):
                        await trio.sleep(0.01)
                assert bytes(got) == whole
                counts.append(ours[0])

    trio.run(main)
    # One message for write_size bytes, two for one byte more; 1 MiB in one write: 16
    # full frames of two messages each and a short one; in write_size pieces: 17.
    assert counts == [1, 2, 33, 17]


def test_an_open_window_credits_the_peer_once_a_megabyte() -> None:
    # Libp2pStream.open_window (every sync stream's reader calls it) replaces py-libp2p's
    # window update after every read (about one per 64 KiB frame) with one per MiB read,
    # after opening the window to 16 MiB. It relies on YamuxStream's
    # _auto_tune_and_send_window_update, recv_window, target_recv_window, window_lock and
    # send_window_update: if an upgrade renames one, this fails (the count, or an error).
    import os

    from libp2p.stream_muxer.yamux import yamux

    from craftnet.node.p2p.libp2p_net import CREDIT_STEP, WINDOW, Libp2pNetwork
    from craftnet.node.p2p.net import ByteStream
    from craftnet.protocol.events import PeerId
    from tests.node.p2p.helpers import LOOPBACK

    assert callable(yamux.YamuxStream._auto_tune_and_send_window_update)
    assert WINDOW == yamux.MAX_WINDOW_SIZE
    mib = 1024 * 1024
    total = 24 * mib  # more than the window: the credits must keep the sender going
    a = Libp2pNetwork(os.urandom(32), "/test")
    b = Libp2pNetwork(os.urandom(32), "/test")
    got = bytearray()
    updates: list[int] = []
    done = trio.Event()

    async def sink(peer: PeerId, stream: ByteStream) -> None:
        await stream.open_window()
        muxed = stream._stream.muxed_stream  # type: ignore[attr-defined]
        assert muxed.target_recv_window == WINDOW
        conn = muxed.conn
        ours = muxed.stream_id
        write_frame = conn._write_frame

        async def counted(data: bytes) -> None:
            sid = int.from_bytes(data[4:8], "big")
            if data[1] == yamux.TYPE_WINDOW_UPDATE and not data[2:4].strip(b"\0") and sid == ours:
                updates.append(int.from_bytes(data[8:12], "big"))
            await write_frame(data)

        conn._write_frame = counted
        while data := await stream.read(mib):
            got.extend(data)
            if len(got) >= total:
                done.set()

    b.set_stream_handler(sink)
    payload = os.urandom(total)

    async def main() -> None:
        async with a.running(list(LOOPBACK)), b.running(list(LOOPBACK)):
            peer = await a.connect(b.listen_addrs()[0])
            stream = await a.open_stream(peer)
            for start in range(0, total, mib):
                await stream.write(payload[start : start + mib])
            with trio.fail_after(20):
                await done.wait()

    trio.run(main)
    assert bytes(got) == payload
    # One update a MiB read (py-libp2p alone: one per read, about 380 here).
    assert 1 <= len(updates) <= total // CREDIT_STEP
    assert all(n >= CREDIT_STEP for n in updates)


def test_a_read_waits_for_the_rest_of_a_frame_on_a_widened_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The links pass the engine's "bytes still missing from the frame begun" to read():
    # on a stream open_window widened, the read waits until yamux holds that much (a
    # 1 MiB block in one read rather than sixteen), and returns at once when the stream
    # ends. It waits on yamux's per-stream buffer and event (checked here).
    import os

    from craftnet.node.p2p import libp2p_net
    from craftnet.node.p2p.libp2p_net import WRITE_SIZE, Libp2pNetwork
    from craftnet.node.p2p.net import ByteStream
    from craftnet.protocol.events import PeerId
    from tests.node.p2p.helpers import LOOPBACK

    monkeypatch.setattr(libp2p_net, "WAIT_S", 60.0)  # the test waits on data, not clocks
    mib = 1024 * 1024
    a = Libp2pNetwork(os.urandom(32), "/test")
    b = Libp2pNetwork(os.urandom(32), "/test")
    reads: list[int] = []
    turn = [trio.Event() for _ in range(3)]

    async def sink(peer: PeerId, stream: ByteStream) -> None:
        reads.append(len(await stream.read(mib, mib)))  # not widened: no waiting
        await stream.open_window()
        turn[0].set()
        reads.append(len(await stream.read(mib, mib - reads[0])))
        turn[1].set()
        reads.append(len(await stream.read(mib, mib)))  # the tail, then the end
        reads.append(len(await stream.read(mib, mib)))
        turn[2].set()

    b.set_stream_handler(sink)
    payload = os.urandom(mib + 1000)

    async def main() -> None:
        async with a.running(list(LOOPBACK)), b.running(list(LOOPBACK)):
            peer = await a.connect(b.listen_addrs()[0])
            stream = await a.open_stream(peer)
            with trio.fail_after(20):
                await stream.write(payload[:1000])
                await turn[0].wait()
                for start in range(1000, mib, WRITE_SIZE):
                    await stream.write(payload[start : min(start + WRITE_SIZE, mib)])
                await turn[1].wait()
                await stream.write(payload[mib:])
                await stream.close()
                await turn[2].wait()

    trio.run(main)
    # 1,000 bytes as they came; the other 1,047,576 in one read (sixteen frames); the
    # tail of 1,000 although a MiB was hinted, since the stream ended; then the end.
    assert reads == [1000, mib - 1000, 1000, 0]
