"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by test_web_schemathesis.py).

The OpenAPI document names one string format of its own, ``did-key``: an Ed25519
did:key that names a point on the curve, which no pattern can say. Here is how to make
such strings: from a random 32-byte seed, as a hub makes a key.
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

from craftnet.identity.keys import PrivateKey
from craftnet.node.web.record_schemas import DID_KEY_FORMAT

schemathesis.openapi.format(
    DID_KEY_FORMAT,
    st.binary(min_size=32, max_size=32).map(lambda seed: PrivateKey.from_seed(seed).did),
)
