"""What the operator allows on this hub's web, kept in ``web-policy.json`` in its home.

Today one rule: whether *walk-in* artisans (nobody logged in) may make a key on the hub or
import one from another hub. Off by default; a demo hub starts with it on. Only the
operator changes it (``PUT /api/v1/policy`` or the operator's page).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from craftnet.errors import CraftnetError

POLICY_FILE: Final = "web-policy.json"
MAX_POLICY_BYTES: Final = 4096


class PolicyError(CraftnetError):
    """The policy file is unreadable or holds something else."""


@dataclass(slots=True)
class Policy:
    """The operator's rules for the web UI."""

    path: Path | None
    walk_in_keys: bool = False

    @classmethod
    def load(cls, home: Path, *, default_walk_in: bool = False) -> Policy:
        """The policy saved in ``home``, or the default when none was saved."""
        path = home / POLICY_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path, default_walk_in)
        except OSError as exc:
            raise PolicyError(f"cannot read {path}: {exc}") from exc
        try:
            data = json.loads(raw[:MAX_POLICY_BYTES].decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise PolicyError(f"{path} is not JSON: {exc}") from exc
        if not isinstance(data, dict) or type(data.get("walk_in_keys")) is not bool:
            raise PolicyError(f'{path} must hold {{"walk_in_keys": true|false}}')
        return cls(path, data["walk_in_keys"])

    def set_walk_in_keys(self, allowed: bool) -> None:
        """Change the rule and save it (atomically)."""
        self.walk_in_keys = allowed
        if self.path is None:
            return
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps({"walk_in_keys": allowed}) + "\n", encoding="utf-8")
        os.replace(partial, self.path)

