"""The ground floor: what every other part agrees on and nothing of ours below it.

Settings, the event contract and its id rules, the Redis key layout, days in a VDN's zone and
the AK/SK signature. Imports nothing of ``isales_stats`` outside ``core``.
"""
