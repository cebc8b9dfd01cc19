"""mDNS discovery of hubs on the local network (py-libp2p's zeroconf service).

libp2p's mDNS binds zeroconf to every interface; a hub chooses one with
``mdns_interface`` in network.toml (tests never start mDNS: they stay on 127.0.0.1).
Discovered peers arrive on zeroconf's own thread and are handed to the trio thread,
where the driver dials them like any bootstrap hub; the hello then decides whether
they are of our alliance.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from craftnet.node.hub import Hub

log = logging.getLogger("craftnet.p2p")


def start_mdns(hub: Hub, nursery: trio.Nursery) -> None:
    """Announce this hub on the LAN and dial the hubs found there (until cancelled)."""
    nursery.start_soon(_run, hub)


async def _run(hub: Hub) -> None:
    import libp2p.discovery.mdns.mdns as mdns_module
    from libp2p.discovery.events.peerDiscovery import peerDiscovery
    from zeroconf import Zeroconf

    host = hub.network.host
    port = 0
    for addr in hub.addrs:
        with contextlib.suppress(Exception):
            port = int(addr.split("/tcp/")[1].split("/")[0])
            break
    interface = hub.settings.mdns_interface
    factory: Any = partial(Zeroconf, interfaces=[interface]) if interface else Zeroconf
    original = mdns_module.Zeroconf  # type: ignore[attr-defined]
    mdns_module.Zeroconf = factory  # type: ignore[attr-defined]
    try:
        discovery = mdns_module.MDNSDiscovery(
            host.get_network(), port=port, listen_addrs=hub.addrs, host=host
        )
    except OSError as exc:
        log.warning("mDNS is off: %s (set mdns_interface in network.toml)", exc)
        return
    finally:
        mdns_module.Zeroconf = original  # type: ignore[attr-defined]
    token = trio.lowlevel.current_trio_token()
    me = str(hub.peer_id)

    def found(info: Any) -> None:
        peer = info.peer_id.to_base58()
        if peer == me or not info.addrs:
            return
        addr = f"{info.addrs[0]}/p2p/{peer}"
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(hub.driver.dial, addr, trio_token=token)

    peerDiscovery.register_peer_discovered_handler(found)
    discovery.start()
    log.info("mDNS discovery on %s", interface or "every interface")
    try:
        await trio.sleep_forever()
    finally:
        peerDiscovery.unregister_peer_discovered_handler(found)
        with contextlib.suppress(Exception):
            discovery.stop()
