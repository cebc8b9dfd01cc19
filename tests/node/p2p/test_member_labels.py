"""The peers a running hub lists carry their organisation (from their certificates):
two real hubs on 127.0.0.1, the web app's peers page and status read ``Hub.status``."""

from __future__ import annotations

from pathlib import Path

import trio

from craftnet.archive.alliance import accept_token, create_alliance, invite
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keys import PrivateKey
from tests.node.p2p.helpers import HubSetup, start_hub, wait_for


def test_connected_members_are_listed_with_their_organisation(tmp_path: Path) -> None:
    founder, member = (
        HubSetup(name, tmp_path / name, LmdbStore(tmp_path / name / "store"),
                 PrivateKey.generate())
        for name in ("lisbon", "oaxaca")
    )
    alliance = str(create_alliance(founder.store, founder.key, "Global Micro-manufacturing "
                                   "Alliance").cid)
    _, token = invite(founder.store, founder.key, alliance, member.key.did,
                      name="Oaxaca makerspace", organisation="Intergenerational Making Co-op")
    accept_token(member.store, token, member.key.did)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            lisbon = await start_hub(nursery, founder, alliance)
            await start_hub(nursery, member, alliance, (lisbon.addrs[0],))
            await wait_for(lambda: len(lisbon.engine.ready_peers()) == 1, 10, "the member")
            (peer,) = lisbon.status()["peers"]
            assert peer["did"] == member.key.did
            assert peer["organisation"] == "Intergenerational Making Co-op"
            assert peer["name"] == "Oaxaca makerspace"
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        founder.store.close()
        member.store.close()
