"""The lab's errors: a scenario that cannot run, or a step the hubs did not let us do."""

from __future__ import annotations

from craftnet.errors import CraftnetError


class LabError(CraftnetError):
    """The lab could not carry out a step (a hub did not start, a command failed)."""


class ScenarioError(LabError):
    """A scenario file that cannot be run; the message names the step and the option."""
