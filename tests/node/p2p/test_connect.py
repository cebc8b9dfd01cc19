"""Hubs that dial each other at the same moment (a restarted hub dials its bootstrap
members while they redial it) agree on one sync stream and link at once."""

from __future__ import annotations

import itertools
from pathlib import Path

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
