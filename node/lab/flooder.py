"""A hostile alliance member for the lab: a real hub that floods fake announcements.

Run by the *tested* installation's Python (``python -I flooder.py --home ...``), so it
speaks exactly the protocol of the hubs under test: it is a member (it joined with a
real invitation), runs an ordinary :class:`~craftnet.node.hub.Hub`, and once it has a
ready peer publishes on the alliance topic, ``rate`` times a second for ``seconds``,
announcements it signs itself naming records that exist nowhere, so nobody can ever
fetch them. It prints ``peer``, ``flooding`` and ``flood over`` lines for the lab and
stops on SIGTERM.

Only public names of the tested build are used (the hub, the protocol's message and
frame encoders), so the program runs against other branches as long as those hold.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import trio

from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.hlc import pack
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keys import PrivateKey
from craftnet.identity.keystore import Keystore
from craftnet.node.hub import Hub, run_until_signalled
from craftnet.node.p2p.settings import load_settings
from craftnet.protocol.framing import encode_frame
from craftnet.protocol.messages import Announce

READY_WAIT = 30.0  # seconds to wait for a first ready peer before flooding anyway


def fake_announcement(key: PrivateKey, fakes: int) -> bytes:
    """One signed announcement frame naming ``fakes`` records nobody holds."""
    records = tuple(Cid.of(os.urandom(32), DAG_CBOR) for _ in range(fakes))
    message = Announce.create(key, pack(time.time_ns() // 1_000_000), records)
    return encode_frame(message)


async def flood(hub: Hub, key: PrivateKey, rate: float, seconds: float, fakes: int) -> None:
    """Wait for a ready peer, then publish fake announcements at ``rate`` for ``seconds``."""
    with trio.move_on_after(READY_WAIT):
        while not hub.engine.ready_peers():
            await trio.sleep(0.05)
    print(f"flooding {rate:g}/s for {seconds:g}s at {time.time():.3f}", flush=True)
    sent = failed = 0
    start = trio.current_time()
    while trio.current_time() - start < seconds:
        try:
            await hub.network.publish(fake_announcement(key, fakes))
            sent += 1
        except Exception as exc:  # a flooder keeps going whatever the network says
            failed += 1
            print(f"publish failed: {exc}", file=sys.stderr, flush=True)
        await trio.sleep_until(start + (sent + failed) / rate)
    print(f"flood over: {sent} sent, {failed} failed at {time.time():.3f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the flooder until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--bootstrap", action="append", default=[])
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fakes", type=int, default=4, help="records named per announcement")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = load_settings(args.home).with_options(
        listen=(args.listen,), bootstrap=tuple(args.bootstrap), mdns=False
    )
    name_file = args.home / "hub-key"
    name = name_file.read_text().strip() if name_file.exists() else "hub"
    key = Keystore.for_home(args.home).load(name, None)
    with LmdbStore(args.home / "store") as store:
        hub = Hub(args.home, store, key, settings)

        def ready(running: Hub) -> None:
            print(f"peer {running.peer_id}", flush=True)
            for addr in running.addrs:
                print(f"listening on {addr}", flush=True)
            nursery_holder[0].start_soon(flood, running, key, args.rate, args.seconds, args.fakes)

        nursery_holder: list[trio.Nursery] = []

        async def both() -> None:
            async with trio.open_nursery() as nursery:
                nursery_holder.append(nursery)
                await run_until_signalled(hub, ready)
                nursery.cancel_scope.cancel()

        trio.run(both)
    return 0


if __name__ == "__main__":
    sys.exit(main())
