"""How hard a passphrase is to guess (zxcvbn), and what to tell the artisan in plain words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from zxcvbn import zxcvbn

MIN_SCORE: Final = 3  # zxcvbn's "safely unguessable": about 10^8 guesses or more
SCORED_CHARS: Final = 72  # zxcvbn refuses longer input; the first 72 say enough
_SCORE_WORDS: Final = (
    "very easy to guess",
    "easy to guess",
    "guessable with some effort",
    "hard to guess",
    "very hard to guess",
)


@dataclass(frozen=True, slots=True)
class Strength:
    """A passphrase's score (0-4), whether it is enough, and a hint for a person."""

    score: int
    ok: bool
    hint: str


def rate(passphrase: str, *, words: tuple[str, ...] = ()) -> Strength:
    """Rate ``passphrase``; ``words`` (a handle, the hub's name) count as easy guesses."""
    if not passphrase:
        return Strength(
            0, False, "Type a passphrase: three or four words that do not belong together."
        )
    result = zxcvbn(passphrase[:SCORED_CHARS], user_inputs=[w for w in words if w])
    score = int(result["score"])
    feedback = result.get("feedback") or {}
    parts = [f"This passphrase is {_SCORE_WORDS[score]}."]
    if feedback.get("warning"):
        parts.append(str(feedback["warning"]))
    parts.extend(str(s) for s in feedback.get("suggestions") or [])
    if score < MIN_SCORE and not feedback.get("suggestions"):
        parts.append("Use three or four words that do not belong together.")
    return Strength(score, score >= MIN_SCORE, " ".join(parts))
