"""The hub's housekeeping while it serves: unfinished bundle work expires.

``craftnet serve`` runs :func:`tidy` when it starts and every :data:`INTERVAL` seconds
after (next to the search index's catch-up, in the web app's background tasks, in a
worker thread so that the web server never waits for it). It removes held parts of split
bundles and interrupted imports' job folders idle for ``[bundles] keep_unfinished_days``
(config.toml; default 30, 0: never), as ``craftnet imports prune`` does by hand
(:mod:`craftnet.archive.leftovers` says what is kept).
"""

from __future__ import annotations

import logging
import time
from typing import Final

from craftnet.archive.leftovers import ExpireReport, days_ms, expire
from craftnet.archive.store import Store
from craftnet.node.config import HubConfig

log = logging.getLogger("craftnet.hub")

INTERVAL: Final = 3600.0  # seconds between two rounds while serving


def tidy(config: HubConfig, store: Store, now_ms: int | None = None) -> ExpireReport | None:
    """Remove unfinished bundle work older than the configured limit; ``None`` when the
    limit is 0 (keep it all). Logs what went at INFO."""
    if config.keep_unfinished_days == 0:
        return None
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    report = expire(store, config.home, now_ms=now,
                    max_age_ms=days_ms(config.keep_unfinished_days))
    if report.removed_anything or report.stamped:
        log.info(
            "unfinished imports idle %d days or more: removed %d held block(s) (%d bytes) "
            "of %d bundle set(s), %d unreadable held value(s), %d job folder(s) (%d bytes); "
            "gave %d held block(s) without an age the time now",
            config.keep_unfinished_days, report.removed_blocks, report.removed_bytes,
            report.removed_sets, report.unreadable, report.removed_jobs,
            report.removed_job_bytes, report.stamped,
        )
    return report
