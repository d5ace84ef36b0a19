"""The AK/SK pairs the tests sign with, and the worked example of the signature.

``TEST_KEYS`` is what the API under test is given (``ISALES_AUTH_KEYS``); two operator keys
(every VDN), so that a test can show that one key's budget or refusal does not touch the
other's, and two tenants' keys: tenant A's sees VDNs 100-109, tenant B's VDN 200 (the hostile
suite, tests/test_tenants.py, has each try the other's).
"""

from __future__ import annotations

ACCESS_KEY, SECRET_KEY = "test-ak", "test-sk-0123456789"
OTHER_ACCESS_KEY, OTHER_SECRET_KEY = "other-ak", "other-sk-0123456789"
TENANT_A_KEY, TENANT_A_SECRET, TENANT_A_VDNS = (
    "tenant-a-ak",
    "tenant-a-sk-0123456789",
    range(100, 110),
)
TENANT_B_KEY, TENANT_B_SECRET, TENANT_B_VDNS = (
    "tenant-b-ak",
    "tenant-b-sk-0123456789",
    range(200, 201),
)
TEST_KEYS = (
    f"{ACCESS_KEY}:{SECRET_KEY} vdns=*,{OTHER_ACCESS_KEY}:{OTHER_SECRET_KEY} vdns=*,"
    f"{TENANT_A_KEY}:{TENANT_A_SECRET} vdns=100-109,{TENANT_B_KEY}:{TENANT_B_SECRET} vdns=200"
)

# The worked example: GET /rest/isales/v2/openapi/campaigns/1/statistics?campaignId=C1 signed
# by demo-ak/demo-sk at 2026-11-28T02:30:00Z. docs/api.md (section "Authentication") quotes
# this value: it must only change together with that page. tests/test_signing.py recomputes
# it; tests/test_api_auth.py checks the page and the client's signer against it.
WORKED_EXAMPLE_AUTHORIZATION = (
    "auth-v2/demo-ak/2026-11-28T02:30:00.000Z/content-type;host/"
    "fc41ff8f89713dd40ceff630a1030a0d12bb38fa49bd57576d2ce01054ce27b3"
)
