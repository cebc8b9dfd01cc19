"""The files browsers load from the hub: its own CSS and scripts, and three.js.

three.js comes from the npm registry (``node/web/assets/package.json`` with its committed
``package-lock.json``; ``make run`` and ``make test`` run ``npm ci`` there) and is served
by the hub under ``/vendor/three/``: no CDN, so the 3D viewer works offline. The viewer
imports it by the bare name ``three``, which the page's import map resolves; that inline
map is allowed by the pages' Content-Security-Policy through its hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path
from typing import Final

from aiohttp import web

log = logging.getLogger("craftnet.node.web")

HERE: Final = Path(__file__).parent
STATIC: Final = HERE / "static"
NODE_MODULES: Final = HERE / "assets" / "node_modules"
THREE: Final = NODE_MODULES / "three"
IMPORT_MAP: Final = json.dumps(
    {
        "imports": {
            "three": "/vendor/three/build/three.module.js",
            "three/addons/": "/vendor/three/examples/jsm/",
        }
    },
    separators=(",", ":"),
)
IMPORT_MAP_HASH: Final = (
    "sha256-" + base64.b64encode(hashlib.sha256(IMPORT_MAP.encode()).digest()).decode()
)


def viewer_available() -> bool:
    """Whether three.js is installed (``npm ci`` in node/web/assets has run)."""
    return (THREE / "build" / "three.module.js").is_file()


def add_routes(app: web.Application) -> None:
    """Serve /static/ (the hub's own) and /vendor/three/ (when installed)."""
    app.router.add_static("/static/", STATIC, append_version=False)
    if viewer_available():
        app.router.add_static("/vendor/three/", THREE, append_version=False)
    else:
        log.warning(
            "three.js is not installed (run 'make run' or 'npm ci' in %s): design pages "
            "show drawings of models instead of the 3D viewer",
            HERE / "assets",
        )
