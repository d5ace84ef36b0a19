"""The future-skew rule: an event stamped later than the clock plus the allowed skew is refused.

The worker dead-letters such an event (``engine/pipeline.py``) and the publisher will not send
it (``producing/publisher.py``, also behind the callback receiver), so the rule is written once
here: a publisher laxer than the worker would send events only to see them dead-lettered, and a
stricter one would refuse what the worker counts. The skew is ``future_tolerance_seconds``
(``ISALES_FUTURE_TOLERANCE_SECONDS``): producers' clocks run a little ahead of the worker's.
"""

from __future__ import annotations


def latest_admitted_ms(now: float, future_tolerance_seconds: int) -> int:
    """The latest ``occurredAt`` (epoch milliseconds) admitted at ``now`` (epoch seconds).

    Computed once per batch by the worker, not per event: the comparison is all an event costs.
    """
    return int(now * 1000) + future_tolerance_seconds * 1000
