"""Connection limits: a hub with room for one peer refuses the second one's sync stream,
and takes it once the first has gone (the second keeps redialling with backoff)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import trio

from craftnet.node.hub import Hub
from craftnet.protocol.engine import EngineConfig
from craftnet.protocol.policy import DEFAULT_POLICY
from tests.node.p2p.helpers import make_hubs, settings, start_hub, wait_for


def test_a_full_hub_refuses_more_peers_until_one_leaves(tmp_path: Path) -> None:
    alliance, (small, first, second) = make_hubs(tmp_path, 3)
    # A refused hub redials slowly (a minute); make that two seconds here.
    patient = replace(DEFAULT_POLICY, redial_max=2.0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            config = EngineConfig(alliance=alliance)
            one_peer = replace(settings(alliance), max_peers=1)
            narrow = Hub(small.home, small.store, small.key, one_peer, engine_config=config)
            await nursery.start(lambda task_status: narrow.run(task_status=task_status))
            async with trio.open_nursery() as visit:
                a = await start_hub(visit, first, alliance, (narrow.addrs[0],))
                await wait_for(lambda: narrow.engine.ready_peers() == [a.peer_id], 10, "first")
                b = await start_hub(nursery, second, alliance, (narrow.addrs[0],), policy=patient)
                # The narrow hub says why it refuses, and the second hub can say so: the
                # bye reaches it before the reset (it used to be lost on a busy machine,
                # and the second hub saw only "disconnected" until a later attempt).
                seen: list[str | None] = []

                def refused() -> bool:
                    why = b.driver.refusal(narrow.peer_id)
                    if why is not None and why not in seen:
                        seen.append(why)
                    return "no room" in (why or "")

                await wait_for(refused, 10, "refusal")
                assert len(seen) == 1, seen
                assert (b.driver.refusal(narrow.peer_id) or "").startswith(
                    f"{narrow.peer_id} refused us"
                )
                assert narrow.engine.ready_peers() == [a.peer_id]
                assert b.engine.ready_peers() == []
                # The first hub goes away. (A hub stopped inside this process keeps its
                # sockets until the process ends, so the narrow hub hangs up on it, as it
                # sees a hub whose process exited.)
                visit.cancel_scope.cancel()
            await narrow.network.hang_up(a.peer_id)
            await wait_for(lambda: narrow.engine.ready_peers() == [b.peer_id], 15,
                           "the second hub to get in")
            nursery.cancel_scope.cancel()

    trio.run(main)
    for setup in (small, first, second):
        setup.store.close()
