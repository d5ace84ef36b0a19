"""The AK/SK pairs the tests sign with, and the worked example of the signature.

``TEST_KEYS`` is what the API under test is given (``ISALES_AUTH_KEYS``); two pairs, so that a
test can show that one key's budget or refusal does not touch the other's.
"""

from __future__ import annotations

ACCESS_KEY, SECRET_KEY = "test-ak", "test-sk"
OTHER_ACCESS_KEY, OTHER_SECRET_KEY = "other-ak", "other-sk"
TEST_KEYS = f"{ACCESS_KEY}:{SECRET_KEY},{OTHER_ACCESS_KEY}:{OTHER_SECRET_KEY}"
