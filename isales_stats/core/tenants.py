"""Which VDNs an access key may see: the scope it is issued with.

A VDN is a tenant, and CC-iSales operations issue AK/SK per tenant. So a key is written with
its VDNs, after the pair and a space: ``AK:SK vdns=1;7;10-20`` (single VDNs and inclusive
ranges, separated by ';' because ',' separates the pairs), or ``AK:SK vdns=*`` for an operator
key that sees every VDN. There is no default: a key without a scope would silently see every
tenant, so the API refuses to start with one (api/auth.py) and says how to write it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from isales_stats.core.events import MAX_VDN_ID, MIN_VDN_ID

SCOPE_PREFIX = "vdns="
EVERY_VDN_TEXT = "*"
_PART = re.compile(r"([0-9]{1,10})(?:-([0-9]{1,10}))?")  # ASCII digits only, as signing.py


@dataclass(frozen=True, slots=True)
class VdnScope:
    """The VDNs one key may read and write: inclusive ranges, or every VDN (an operator's)."""

    ranges: tuple[tuple[int, int], ...] = ()
    every_vdn: bool = False

    def admits(self, vdn_id: int) -> bool:
        return self.every_vdn or any(low <= vdn_id <= high for low, high in self.ranges)

    @classmethod
    def parse(cls, text: str) -> VdnScope:
        """``*``, or VDNs and ranges: ``1;7;10-20``. ``ValueError`` saying what is wrong."""
        text = text.strip()
        if text == EVERY_VDN_TEXT:
            return cls(every_vdn=True)
        ranges = []
        for part in filter(None, (piece.strip() for piece in text.split(";"))):
            match = _PART.fullmatch(part)
            if match is None:
                raise ValueError(f"VDN scope {part!r}: expected a VDN id or a range like 10-20")
            low = int(match.group(1))
            high = int(match.group(2) or low)
            if not MIN_VDN_ID <= low <= high <= MAX_VDN_ID:
                raise ValueError(
                    f"VDN scope {part!r}: VDN ids go from {MIN_VDN_ID} to {MAX_VDN_ID}, low first"
                )
            ranges.append((low, high))
        if not ranges:
            raise ValueError("empty VDN scope: list VDNs (vdns=1;7;10-20) or give vdns=*")
        return cls(ranges=tuple(sorted(ranges)))

    def __str__(self) -> str:
        if self.every_vdn:
            return EVERY_VDN_TEXT
        return ";".join(str(low) if low == high else f"{low}-{high}" for low, high in self.ranges)


EVERY_VDN = VdnScope(every_vdn=True)

_TOKEN = re.compile(r"[!-+\--~]{16,}")  # visible ASCII but ',', at least 16 characters
# What separates a secret from its scope: ASCII spaces (as signing.py, never Unicode ones).
SCOPE_SPLIT = re.compile(r"[ \t]+(?=" + re.escape(SCOPE_PREFIX) + ")")


def parse_scoped_tokens(text: str) -> list[tuple[str, VdnScope | None]]:
    """Callback tokens with their VDNs: ``"TOKEN1 vdns=100-109,TOKEN2 vdns=200"`` (None where
    a token has no ``vdns=``). ``ValueError`` names a token by its place, never by itself."""
    tokens: list[tuple[str, VdnScope | None]] = []
    for place, item in enumerate(filter(None, (part.strip() for part in text.split(","))), 1):
        token, *scoped = SCOPE_SPLIT.split(item, maxsplit=1)
        if not _TOKEN.fullmatch(token):
            raise ValueError(
                f"token {place}: at least 16 visible ASCII characters, no ',' or space"
            )
        try:
            scope = VdnScope.parse(scoped[0].removeprefix(SCOPE_PREFIX)) if scoped else None
        except ValueError as error:
            raise ValueError(f"token {place}: {error}") from None
        tokens.append((token, scope))
    return tokens
