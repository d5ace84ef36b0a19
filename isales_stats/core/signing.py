"""The CC-iSales AK/SK request signature ("auth-v2", of the bce-auth-v1 family): sign and verify.

A request carries ``Authorization: auth-v2/{AK}/{ts}/{signedHeaders}/{signature}`` where::

    ts               = UTC time, yyyy-MM-dd'T'HH:mm:ss.SSS'Z'
    signedHeaders    = the signed header names, lower case, sorted, joined with ';'
    prefix           = auth-v2/{AK}/{ts}/{signedHeaders}
    signingKey       = hex(HMAC-SHA256(key=SK, msg=prefix))
    canonicalRequest = METHOD \\n encoded path \\n canonical query \\n signedHeaders
                       \\n name:value (one line per signed header) \\n body
    signature        = hex(HMAC-SHA256(key=signingKey, msg=canonicalRequest))

Decisions taken here (Huawei documents the header only as an image):

- ``path`` and query names/values are passed *decoded*; they are percent-encoded here with the
  RFC 3986 unreserved set (``A-Z a-z 0-9 - . _ ~``, UTF-8, upper-case hex), ``/`` kept in the path.
- The query is canonicalised as the encoded ``name=value`` strings, sorted, joined with ``&``; a
  parameter without a value is ``name=``. Repeated parameters are all kept. A server reads the
  pairs out of the raw query string with ``decode_query``, the same decoding that its
  parameter checks then see.
- Exactly the headers named in ``signedHeaders`` are signed, and each must be present in the
  request; header values are only trimmed of spaces and tabs (HTTP's optional whitespace).
- The canonical request is built as bytes so the body is signed exactly as received, whatever
  its encoding; for a UTF-8 body this is the same as signing the joined text.
- A timestamp up to ``window`` old or ``future`` ahead of the server's clock is accepted, edges
  included. Nothing here stops a replay inside the window: the API remembers the signatures it
  accepted (api/admission.py), since that needs state shared by its processes. It remembers the
  parsed signature (``Authenticated.signature``), never the header as sent: the header is
  trimmed of spaces and tabs before it is read, so ``<header> `` is the same signature.
- An unknown access key costs the same work as a known one: the signature is computed with a
  stand-in secret and compared in constant time before the key is refused, so the time of a
  refusal does not tell which access keys exist.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from urllib.parse import parse_qsl, quote

from isales_stats.core.tenants import SCOPE_PREFIX, SCOPE_SPLIT, VdnScope

__all__ = [
    "AUTH_SCHEME",
    "Authenticated",
    "AuthenticationError",
    "KeyGrant",
    "authenticate_request",
    "canonical_request",
    "decode_query",
    "format_timestamp",
    "parse_key_grants",
    "sign_request",
]

AUTH_SCHEME = "auth-v2"
DEFAULT_SIGNED_HEADERS: tuple[str, ...] = ("host", "content-type")
DEFAULT_WINDOW = timedelta(minutes=15)

# Character classes are spelled out as ASCII: Python's \d and \s also match non-ASCII digits and
# spaces, which would let a lenient parser accept what the client never produced.
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{3})Z"
)
# HTTP token (RFC 9110) characters, lower case only: signedHeaders is canonical on the wire.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Visible ASCII without the separators of the Authorization header and of the key file.
_ACCESS_KEY = re.compile(r"[!-~]+")
_ACCESS_KEY_FORBIDDEN = frozenset("/:,#")
_SECRET_KEY = re.compile(r"[!-+\--~]+")  # visible ASCII except ',' (the pair separator)
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
# Control characters (HTAB aside) in a header value could forge extra canonical lines, e.g. a
# content-type "json\nX" with an empty body would sign the same bytes as "json" with body "X".
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HTTP_WHITESPACE = " \t"
# What an unknown access key's signature is computed with, so that refusing it costs what
# refusing a wrong signature costs. Random per process: no request can be signed with it, and
# the key is refused whatever the comparison says.
_STAND_IN_SECRET_KEY = secrets.token_hex(16)


class AuthenticationError(Exception):
    """A request failed authentication; ``reason`` is a short code for logs, never for clients.

    Reasons: ``missing`` (no Authorization), ``malformed`` (unparseable header or request),
    ``unsigned-header`` (a header the server requires is not signed), ``unknown-key``,
    ``expired`` (timestamp outside the window), ``missing-header`` (a signed header is absent
    from the request) and ``bad-signature``; api/auth.py adds ``wrong-host`` and ``replayed``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def format_timestamp(moment: datetime) -> str:
    """``moment`` as ``yyyy-MM-ddTHH:mm:ss.SSSZ`` in UTC; sub-millisecond digits are dropped."""
    if moment.utcoffset() is None:
        # A naive time would silently be read as the host's local time.
        raise ValueError("moment must be timezone-aware")
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def _parse_timestamp(text: str) -> datetime:
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not a yyyy-MM-ddTHH:mm:ss.SSSZ timestamp: {text!r}")
    year, month, day, hour, minute, second, millis = (int(group) for group in match.groups())
    # datetime() rejects impossible dates and times (Feb 30, hour 24, leap second 60).
    return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=UTC)


def _encode(text: str, *, safe: str = "") -> str:
    # quote() keeps exactly the RFC 3986 unreserved set plus `safe`, writes upper-case hex and
    # encodes UTF-8; it raises UnicodeEncodeError on lone surrogates.
    return quote(text, safe=safe)


def decode_query(raw: bytes) -> list[tuple[str, str]]:
    """The query string's name/value pairs, decoded exactly as the signature covers them.

    Bytes that are not UTF-8 become lone surrogates rather than U+FFFD, so that validation turns
    them away as invalid characters instead of serving a campaign whose id was guessed (and
    ``_encode`` refuses to sign them).
    """
    return parse_qsl(
        raw.decode("utf-8", "surrogateescape"),
        keep_blank_values=True,
        encoding="utf-8",
        errors="surrogateescape",
    )


def _canonical_query(query: Sequence[tuple[str, str]]) -> str:
    return "&".join(sorted(f"{_encode(name)}={_encode(value)}" for name, value in query))


def _lowercase_headers(headers: Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    """The values of the signed ``names`` (lower case), looked up case-insensitively."""
    wanted = set(names)
    found: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower()
        if name not in wanted:
            continue
        if name in found:
            # "Host" and "host" both present: which one the client signed is unknowable.
            raise ValueError(f"header {name!r} given more than once")
        found[name] = value
    return found


def canonical_request(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> bytes:
    """The bytes that get signed; ``signed_headers`` must already be canonical (lower, sorted).

    Raises ``KeyError`` naming a signed header absent from ``headers`` and ``ValueError`` on a
    header value with control characters or a header given twice in different case.
    """
    values = _lowercase_headers(headers, signed_headers)
    header_lines = []
    for name in signed_headers:
        if name not in values:
            raise KeyError(name)
        value = values[name].strip(_HTTP_WHITESPACE)
        if _HEADER_VALUE_FORBIDDEN.search(value):
            raise ValueError(f"control character in header {name!r}")
        header_lines.append(f"{name}:{value}")
    lines = [
        method.upper(),
        _encode(path, safe="/"),
        _canonical_query(query),
        ";".join(signed_headers),
        *header_lines,
    ]
    return "\n".join(lines).encode("utf-8") + b"\n" + body


def _signature(secret_key: str, prefix: str, canonical: bytes) -> str:
    signing_key = hmac.new(secret_key.encode("utf-8"), prefix.encode("utf-8"), hashlib.sha256)
    # The hex text of the first HMAC, not its raw bytes, keys the second one.
    key = signing_key.hexdigest().encode("ascii")
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def _is_access_key(text: str) -> bool:
    return bool(_ACCESS_KEY.fullmatch(text)) and not _ACCESS_KEY_FORBIDDEN.intersection(text)


def sign_request(
    *,
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes = b"",
    moment: datetime,
    signed_headers: Sequence[str] = DEFAULT_SIGNED_HEADERS,
) -> str:
    """The ``Authorization`` header value for a request sent at ``moment``.

    ``path`` and ``query`` are decoded (the client percent-encodes them on the wire itself).
    ``signed_headers`` are lower-cased and sorted here; every one must be in ``headers``.
    Raises ``ValueError`` on anything a verifier could not accept.
    """
    if not _is_access_key(access_key):
        raise ValueError("access key must be visible ASCII without '/', ':', ',' or '#'")
    if not _SECRET_KEY.fullmatch(secret_key):
        raise ValueError("secret key must be non-empty visible ASCII without ','")
    if not _METHOD.fullmatch(method):
        raise ValueError(f"not an HTTP method: {method!r}")
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    names = sorted(name.strip(_HTTP_WHITESPACE).lower() for name in signed_headers)
    if not names:
        raise ValueError("at least one header must be signed")
    if len(set(names)) != len(names):
        raise ValueError(f"signed header listed twice: {names}")
    for name in names:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"not a header name: {name!r}")
    try:
        canonical = canonical_request(
            method=method,
            path=path,
            query=query,
            headers=headers,
            signed_headers=names,
            body=body,
        )
    except KeyError as missing:
        raise ValueError(f"signed header {missing.args[0]!r} is not in headers") from None
    prefix = f"{AUTH_SCHEME}/{access_key}/{format_timestamp(moment)}/{';'.join(names)}"
    return f"{prefix}/{_signature(secret_key, prefix, canonical)}"


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A request that passed: who signed it, the signature as parsed (the canonical value, the
    same however the header was padded) and the moment it was signed at."""

    access_key: str
    signature: str
    signed_at: datetime


def authenticate_request(
    *,
    authorization: str | None,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    secret_keys: Mapping[str, str],
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
    future: timedelta | None = None,
    required_headers: Sequence[str] = (),
) -> Authenticated:
    """Who signed this request, its signature and its stamp; raises ``AuthenticationError``
    otherwise.

    ``path`` and ``query`` are the decoded values the server routes on; ``headers`` is looked up
    case-insensitively. ``now`` must be timezone-aware. A signature may be up to ``window`` old
    and up to ``future`` (``window`` when None) ahead of ``now``: a stamp far ahead would stay
    valid long after it was made, so servers bound it tighter (clock skew only). Each of
    ``required_headers`` (lower case) must be among the signed ones.

    Every check that does not depend on the access key comes first; then the signature is
    computed and compared whether the key is known or not (with a stand-in secret when it is
    not), so an unknown key and a wrong signature are refused after the same work.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if window < timedelta(0):
        raise ValueError("window must not be negative")
    parts, names, moment = _parse_authorization(authorization)
    if not set(required_headers) <= set(names):
        raise AuthenticationError("unsigned-header")
    if now - moment > window or moment - now > (window if future is None else future):
        raise AuthenticationError("expired")
    access_key, signature = parts[1], parts[4]
    secret_key = secret_keys.get(access_key)
    try:
        canonical = canonical_request(
            method=method,
            path=path,
            query=query,
            headers=headers,
            signed_headers=names,
            body=body,
        )
    except KeyError:
        raise AuthenticationError("missing-header") from None
    except ValueError:  # also UnicodeEncodeError: a lone surrogate in the path or a value
        raise AuthenticationError("malformed") from None
    prefix = "/".join(parts[:4])
    expected = _signature(
        _STAND_IN_SECRET_KEY if secret_key is None else secret_key, prefix, canonical
    )
    matches = hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii"))
    if secret_key is None:
        raise AuthenticationError("unknown-key")
    if not matches:
        raise AuthenticationError("bad-signature")
    return Authenticated(access_key, signature, moment)


def _parse_authorization(authorization: str | None) -> tuple[list[str], list[str], datetime]:
    """The header's five parts, its signed header names and its moment; or why it is refused."""
    text = (authorization or "").strip(_HTTP_WHITESPACE)
    if not text:
        raise AuthenticationError("missing")
    # No part may contain '/': ts has none, signedHeaders joins with ';', AKs exclude it.
    parts = text.split("/")
    if len(parts) != 5:
        raise AuthenticationError("malformed")
    scheme, access_key, stamp, signed, signature = parts
    names = signed.split(";")
    if (
        scheme != AUTH_SCHEME
        or not _is_access_key(access_key)
        or not _SIGNATURE.fullmatch(signature)
        or not all(_HEADER_NAME.fullmatch(name) for name in names)
        # Sorted and unique, as a conforming client writes it: anything else was not canonical.
        or any(left >= right for left, right in pairwise(names))
    ):
        raise AuthenticationError("malformed")
    try:
        return parts, names, _parse_timestamp(stamp)
    except ValueError:
        raise AuthenticationError("malformed") from None


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What operations issued with one access key: its secret, and the VDNs it may see
    (None when the line gave no ``vdns=``: api/auth.py refuses to start with such a key)."""

    secret_key: str
    scope: VdnScope | None


def parse_key_grants(text: str) -> dict[str, KeyGrant]:
    """``{AK: KeyGrant}`` from ``"ak1:sk1 vdns=1;7,ak2:sk2 vdns=*"`` or a file of such lines.

    Keys are separated by commas and/or line breaks; spaces around them are ignored, as are
    blank lines and lines starting with ``#``. An SK may contain ':' (the first one splits).
    The scope follows the pair after a space (core/tenants.py). Raises ``ValueError`` on a
    malformed key or scope or an AK given twice; no keys gives ``{}``.
    """
    grants: dict[str, KeyGrant] = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("#"):
            continue
        for item in line.split(","):
            credential, *scoped = SCOPE_SPLIT.split(item.strip(), maxsplit=1)
            if not credential:
                continue
            access_key, colon, secret_key = credential.partition(":")
            access_key, secret_key = access_key.strip(), secret_key.strip()
            # Secrets never go into the message: it ends up in logs.
            where = f"line {line_number}"
            if not colon or not _is_access_key(access_key):
                raise ValueError(f"{where}: expected AK:SK with a valid access key")
            if not _SECRET_KEY.fullmatch(secret_key):
                raise ValueError(f"{where}: secret key for {access_key!r} is empty or invalid")
            if access_key in grants:
                # Two secrets for one AK: which one ops meant is unknowable.
                raise ValueError(f"{where}: access key {access_key!r} given twice")
            try:
                scope = VdnScope.parse(scoped[0].removeprefix(SCOPE_PREFIX)) if scoped else None
            except ValueError as error:
                raise ValueError(f"{where}: access key {access_key!r}: {error}") from None
            grants[access_key] = KeyGrant(secret_key, scope)
    return grants
