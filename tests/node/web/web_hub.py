"""A real hub for web tests: an LMDB store in a temp dir, served by aiohttp on 127.0.0.1.

The server runs on its own thread with its own event loop, on a random free port, so
tests talk to it over real loopback sockets with a plain HTTP client (and Playwright).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from craftnet.archive import demo
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keystore import Keystore
from craftnet.node.config import HubConfig
from craftnet.node.web import auth
from craftnet.node.web.context import NodeContext
from craftnet.node.web.server import serve_until_stopped

FAST_SCRYPT = 2**10  # key files record their cost; tests need not pay the real one


@dataclass
class Reply:
    """An HTTP response, read whole."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def error_code(self) -> str:
        """The API error code (fails the test if the body is not the error shape)."""
        data = self.json()
        assert set(data) == {"error"}, data
        assert isinstance(data["error"]["message"], str) and data["error"]["message"]
        return str(data["error"]["code"])


@dataclass
class Hub:
    """A running hub and a client for it."""

    url: str
    host: str
    port: int
    token: str
    ctx: NodeContext
    home: Path
    seeded: demo.DemoArchive | None = None
    _stop: Any = field(default=None, repr=False)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        auth: bool = False,
        raw: bytes | None = None,
    ) -> Reply:
        """Send one request; ``body`` is sent as JSON, ``raw`` as bytes."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = dict(headers or {})
        data: bytes | None = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if auth:
            sent["Authorization"] = f"Bearer {self.token}"
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        reply = Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
        conn.close()
        return reply

    def get(self, path: str, **kw: Any) -> Reply:
        """GET ``path``."""
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        """POST ``body`` (JSON) to ``path`` with the token unless ``auth=False``."""
        kw.setdefault("auth", True)
        return self.request("POST", path, body, **kw)

    def record_count(self) -> int:
        """How many records the store holds (to check that refusals stored nothing)."""
        with self.ctx.store.read() as txn:
            return txn.count("records")

    def block_count(self) -> int:
        """How many blocks the store holds."""
        with self.ctx.store.read() as txn:
            return txn.count("blocks")


def start_hub(
    home: Path,
    *,
    seed: bool = False,
    require_token_for_reads: bool = False,
    max_upload_bytes: int = 4 * 2**20,
    hub_passphrase: str | None = None,
    export_folders: tuple[Path, ...] = (),
) -> Hub:
    """Open a store in ``home``, optionally seed the demo archive, serve it (the hub key is
    stored unencrypted unless ``hub_passphrase`` is given)."""
    home.mkdir(parents=True, exist_ok=True)
    config = HubConfig(
        home=home,
        http_port=0,
        require_token_for_reads=require_token_for_reads,
        max_upload_bytes=max_upload_bytes,
        export_folders=export_folders,
    )
    store = LmdbStore(config.store_path)
    keystore = Keystore.for_home(home, scrypt_n=FAST_SCRYPT)
    if keystore.has("hub"):  # the same home again: a restarted hub
        hub_did = keystore.info("hub").did
    else:
        hub_did = keystore.create("hub", hub_passphrase, allow_plaintext=not hub_passphrase).did
    seeded = demo.seed(store, keystore) if seed else None
    token = auth.new_token(config.token_path)
    gate = auth.Gate(auth.load_token_hash(config.token_path))
    ctx = NodeContext.open(config, store, keystore, gate, hub_did=hub_did, demo=seed)
    ready = threading.Event()
    found: dict[str, str] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def on_ready(url: str) -> None:
        found["url"] = url
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve_until_stopped(ctx, "127.0.0.1", 0, on_ready, stop))
        except BaseException as exc:
            found["error"] = repr(exc)
            raise
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="craftnet-test-hub", daemon=True)
    thread.start()
    assert ready.wait(30), "the hub did not start"
    assert "url" in found, f"the hub did not start: {found.get('error')}"
    url = found["url"]
    port = int(url.rsplit(":", 1)[1].strip("/"))

    def shutdown() -> None:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
        ctx.close()
        store.close()

    return Hub(url, "127.0.0.1", port, token, ctx, home, seeded, shutdown)


def make_artisan(hub: Hub, handle: str = "amaia", passphrase: str = "clay and fire") -> str:
    """Create an artisan key through the API; return its did."""
    reply = hub.post("/api/v1/keys", {"handle": handle, "passphrase": passphrase})
    assert reply.status == 201, reply.body
    return str(reply.json()["did"])
