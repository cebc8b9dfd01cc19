"""Suite-wide settings: Hypothesis profiles chosen by the HYPOTHESIS_PROFILE variable.

``ci`` (the default) keeps the suite fast and derandomized so CI failures reproduce;
``deterministic`` is the same with fewer examples, for quick local loops; ``thorough``
runs many more examples when hunting a bug.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("deterministic", max_examples=20, derandomize=True, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
