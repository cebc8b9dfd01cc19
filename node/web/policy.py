"""What the operator allows on this hub's web, kept in ``web-policy.json`` in its home.

Today one rule: whether *walk-in* artisans (nobody logged in) may make a key on the hub or
import one from another hub. Off by default; a demo hub starts with it on. Only the
operator changes it (``PUT /api/v1/policy`` or the operator's page).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

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


class Replies:
    """The answers to the last publishes that carried an idempotency key, by (signer, key)."""

    def __init__(self, size: int = 1000) -> None:
        self._size = size
        self._answers: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def get(self, slot: tuple[str, str]) -> Any:
        """The answer given for ``slot``, or None."""
        return self._answers.get(slot)

    def put(self, slot: tuple[str, str], answer: Any) -> None:
        """Remember the answer for ``slot`` (the oldest are forgotten first)."""
        self._answers[slot] = answer
        while len(self._answers) > self._size:
            self._answers.popitem(last=False)
