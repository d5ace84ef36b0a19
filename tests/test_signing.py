"""The auth-v2 AK/SK signature: a pinned worked example, round trips and every rejection path."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isales_stats.client import DistinctMoments
from isales_stats.core.signing import (
    AuthenticationError,
    KeyGrant,
    authenticate_request,
    canonical_request,
    decode_query,
    format_timestamp,
    parse_key_grants,
    sign_request,
)
from isales_stats.core.tenants import EVERY_VDN, VdnScope
from tests.support.credentials import WORKED_EXAMPLE_AUTHORIZATION

MOMENT = datetime(2026, 11, 28, 2, 30, tzinfo=UTC)
KEYS = {"demo-ak": "demo-sk", "other-ak": "other-sk"}


@dataclasses.dataclass(frozen=True)
class Request:
    """One HTTP request as both sides see it; ``replace`` builds the tampered variants."""

    method: str = "GET"
    path: str = "/rest/isales/v2/openapi/campaigns/1/statistics"
    query: Sequence[tuple[str, str]] = (("campaignId", "C1"),)
    headers: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: {
            "Host": "127.0.0.1:8000",
            "Content-Type": "application/json; charset=UTF-8",
        }
    )
    body: bytes = b""

    def sign(
        self,
        *,
        access_key: str = "demo-ak",
        secret_key: str = "demo-sk",
        moment: datetime = MOMENT,
        signed_headers: Sequence[str] = ("host", "content-type"),
    ) -> str:
        return sign_request(
            access_key=access_key,
            secret_key=secret_key,
            method=self.method,
            path=self.path,
            query=self.query,
            headers=self.headers,
            body=self.body,
            moment=moment,
            signed_headers=signed_headers,
        )

    def verify(
        self,
        authorization: str | None,
        *,
        now: datetime = MOMENT,
        window: timedelta = timedelta(minutes=15),
    ) -> str:
        return authenticate_request(
            authorization=authorization,
            method=self.method,
            path=self.path,
            query=self.query,
            headers=self.headers,
            body=self.body,
            secret_keys=KEYS,
            now=now,
            window=window,
        ).access_key

    def replace(self, **changes: object) -> Request:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def rejection(request: Request, authorization: str | None, *, now: datetime = MOMENT) -> str:
    with pytest.raises(AuthenticationError) as caught:
        request.verify(authorization, now=now)
    return caught.value.reason


# --- the worked example ---------------------------------------------------------------------


def test_worked_example_matches_a_straight_line_computation() -> None:
    # Written out from the scheme with hmac/hashlib only, so a shared bug cannot hide.
    prefix = "auth-v2/demo-ak/2026-11-28T02:30:00.000Z/content-type;host"
    canonical = (
        "GET\n"
        "/rest/isales/v2/openapi/campaigns/1/statistics\n"
        "campaignId=C1\n"
        "content-type;host\n"
        "content-type:application/json; charset=UTF-8\n"
        "host:127.0.0.1:8000\n"
        ""  # the (empty) body of a GET
    )
    signing_key = hmac.new(b"demo-sk", prefix.encode(), hashlib.sha256).hexdigest()
    signature = hmac.new(signing_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    independent = f"{prefix}/{signature}"

    assert independent == WORKED_EXAMPLE_AUTHORIZATION
    assert Request().sign() == WORKED_EXAMPLE_AUTHORIZATION
    assert (
        canonical_request(
            method="GET",
            path=Request().path,
            query=Request().query,
            headers=Request().headers,
            signed_headers=["content-type", "host"],
            body=b"",
        )
        == canonical.encode()
    )


def test_worked_example_verifies() -> None:
    assert Request().verify(WORKED_EXAMPLE_AUTHORIZATION) == "demo-ak"


# --- round trips ----------------------------------------------------------------------------


def test_round_trip_post_with_body_and_content_length() -> None:
    body = '{"campaignId":"C1","name":"外呼"}'.encode()
    request = Request(
        method="post",
        headers={
            "HOST": "isales.example:443",
            "content-type": "  application/json\t",
            "Content-Length": str(len(body)),
            "X-Unsigned": "anything",
        },
        body=body,
    )
    authorization = request.sign(
        access_key="other-ak",
        secret_key="other-sk",
        signed_headers=("Host", "Content-Length", "content-type"),
    )
    assert "/content-length;content-type;host/" in authorization
    assert request.verify(authorization) == "other-ak"


def test_header_case_and_optional_whitespace_do_not_matter() -> None:
    authorization = Request().sign()
    relaxed = Request(
        headers={"host": " 127.0.0.1:8000 ", "CONTENT-TYPE": "application/json; charset=UTF-8"}
    )
    assert relaxed.verify(authorization) == "demo-ak"


def test_unsigned_headers_are_not_covered() -> None:
    authorization = Request().sign()
    assert Request(headers={**Request().headers, "X-Trace": "1"}).verify(authorization)


def test_query_order_does_not_matter() -> None:
    query = (("campaignId", "C1"), ("batchId", "b 7"), ("batchId", "a"), ("flag", ""))
    authorization = Request(query=query).sign()
    for reordered in (tuple(reversed(query)), (query[2], query[0], query[3], query[1])):
        assert Request(query=reordered).verify(authorization) == "demo-ak"


@given(
    path=st.lists(st.text(st.characters(codec="utf-8")), max_size=4),
    query=st.lists(
        st.tuples(
            st.text(st.characters(codec="utf-8")),
            st.text(st.characters(codec="utf-8")),
        ),
        max_size=4,
    ),
    body=st.binary(max_size=64),
)
def test_round_trip_any_path_query_and_body(
    path: list[str], query: list[tuple[str, str]], body: bytes
) -> None:
    request = Request(method="PUT", path="/" + "/".join(path), query=query, body=body)
    assert request.verify(request.sign()) == "demo-ak"


# --- canonical form -------------------------------------------------------------------------


def test_percent_encoding_is_rfc3986() -> None:
    canonical = canonical_request(
        method="get",
        path="/a b/ü~+/%",
        query=[("k", "v w+x/y"), ("e", ""), ("~", "-._")],
        headers={"Host": "h"},
        signed_headers=["host"],
        body=b"raw\xff",
    )
    assert canonical == (
        b"GET\n/a%20b/%C3%BC~%2B/%25\ne=&k=v%20w%2Bx%2Fy&~=-._\nhost\nhost:h\nraw\xff"
    )


def test_decode_query_keeps_blanks_repeats_and_order() -> None:
    raw = b"campaignId=C%201&batchId=&batchId=b+2&flag&%C3%BC=%E2%82%AC"
    assert decode_query(raw) == [
        ("campaignId", "C 1"),
        ("batchId", ""),
        ("batchId", "b 2"),  # '+' is a space in a query string
        ("flag", ""),
        ("ü", "€"),
    ]


def test_decode_query_turns_bytes_that_are_not_utf8_into_lone_surrogates() -> None:
    # Not U+FFFD: a guessed character could name a real campaign; a surrogate names none.
    for raw, value in (
        (b"c=%FF", "\udcff"),
        (b"c=\xff", "\udcff"),
        (b"c=a%ED%B3%BF", "a\udced\udcb3\udcbf"),
    ):
        ((name, decoded),) = decode_query(raw)
        assert (name, decoded) == ("c", value)
        with pytest.raises(UnicodeEncodeError):
            decoded.encode("utf-8")  # what the signature and the id checks then refuse


def test_a_decoded_query_verifies_as_the_client_signed_it() -> None:
    query = (("campaignId", "C 1"), ("batchId", "ü/€"), ("e", ""))
    authorization = Request(query=query).sign()
    raw = b"campaignId=C+1&batchId=%C3%BC%2F%E2%82%AC&e="
    assert Request(query=tuple(decode_query(raw))).verify(authorization) == "demo-ak"


def test_format_timestamp_is_utc_with_milliseconds() -> None:
    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2026, 1, 1, 7, 5, 9, 123999, tzinfo=shanghai)
    assert format_timestamp(moment) == "2025-12-31T23:05:09.123Z"


def test_format_timestamp_rejects_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2026, 1, 1))


# --- rejections -----------------------------------------------------------------------------


def test_wrong_secret_key_is_bad_signature() -> None:
    assert rejection(Request(), Request().sign(secret_key="not-demo-sk")) == "bad-signature"


def test_unknown_access_key() -> None:
    authorization = Request().sign(access_key="stranger", secret_key="demo-sk")
    assert rejection(Request(), authorization) == "unknown-key"


@pytest.mark.parametrize("authorization", [None, "", "  "])
def test_missing_authorization(authorization: str | None) -> None:
    assert rejection(Request(), authorization) == "missing"


@pytest.mark.parametrize("sign", [-1, 1], ids=["client-behind", "client-ahead"])
def test_window_edge_is_inclusive(sign: int) -> None:
    window = timedelta(minutes=15)
    authorization = Request().sign()
    at_edge = MOMENT + sign * window
    beyond = at_edge + sign * timedelta(milliseconds=1)
    assert Request().verify(authorization, now=at_edge, window=window) == "demo-ak"
    assert rejection(Request(), authorization, now=beyond) == "expired"


TAMPERINGS: dict[str, Callable[[Request], Request]] = {
    "method": lambda r: r.replace(method="POST"),
    "path": lambda r: r.replace(path=r.path.replace("/1/", "/2/")),
    "query-value": lambda r: r.replace(query=(("campaignId", "C2"),)),
    "query-added": lambda r: r.replace(query=(*r.query, ("batchId", "b1"))),
    "query-dropped": lambda r: r.replace(query=()),
    "header-value": lambda r: r.replace(headers={**r.headers, "Host": "evil.example"}),
    "body": lambda r: r.replace(body=b"{}"),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_tampered_request_is_bad_signature(tamper: Callable[[Request], Request]) -> None:
    assert rejection(tamper(Request()), Request().sign()) == "bad-signature"


def test_missing_signed_header() -> None:
    authorization = Request().sign()
    stripped = Request(headers={"Host": "127.0.0.1:8000"})
    assert rejection(stripped, authorization) == "missing-header"


def test_signed_header_missing_when_signing_is_an_error() -> None:
    with pytest.raises(ValueError, match="content-length"):
        Request().sign(signed_headers=("host", "content-length"))


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "127.0.0.1:8000", "Content-Type": "application/json\n"},
        {"Host": "127.0.0.1:8000", "host": "127.0.0.1:8000", "Content-Type": "a"},
    ],
    ids=["control-character", "header-twice"],
)
def test_ambiguous_headers_are_malformed(headers: dict[str, str]) -> None:
    assert rejection(Request(headers=headers), Request().sign()) == "malformed"


GOOD_SIGNATURE = WORKED_EXAMPLE_AUTHORIZATION.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer abc",
        WORKED_EXAMPLE_AUTHORIZATION.replace("auth-v2", "bce-auth-v1", 1),
        WORKED_EXAMPLE_AUTHORIZATION.replace("auth-v2", "AUTH-V2", 1),
        WORKED_EXAMPLE_AUTHORIZATION.rsplit("/", 1)[0],
        WORKED_EXAMPLE_AUTHORIZATION + "/extra",
        WORKED_EXAMPLE_AUTHORIZATION.replace("demo-ak", "demo/ak"),
        WORKED_EXAMPLE_AUTHORIZATION.replace("demo-ak", ""),
        WORKED_EXAMPLE_AUTHORIZATION.replace(GOOD_SIGNATURE, GOOD_SIGNATURE.upper()),
        WORKED_EXAMPLE_AUTHORIZATION.replace(GOOD_SIGNATURE, GOOD_SIGNATURE[:-1]),
        WORKED_EXAMPLE_AUTHORIZATION.replace("content-type;host", "host;content-type"),
        WORKED_EXAMPLE_AUTHORIZATION.replace("content-type;host", "content-type;host;host"),
        WORKED_EXAMPLE_AUTHORIZATION.replace("content-type;host", "Content-Type;host"),
        WORKED_EXAMPLE_AUTHORIZATION.replace("content-type;host", ""),
        WORKED_EXAMPLE_AUTHORIZATION.replace("content-type;host", "content-type;;host"),
        WORKED_EXAMPLE_AUTHORIZATION.replace(".000Z", "Z"),
        WORKED_EXAMPLE_AUTHORIZATION.replace(".000Z", ".000z"),
        WORKED_EXAMPLE_AUTHORIZATION.replace(".000Z", ".000+00:00"),
        WORKED_EXAMPLE_AUTHORIZATION.replace("T02:30", " 02:30"),
        WORKED_EXAMPLE_AUTHORIZATION.replace("11-28", "11-31"),
        WORKED_EXAMPLE_AUTHORIZATION.replace("2026", "\uff12\uff10\uff12\uff16"),  # full-width
    ],
    ids=[
        "other-scheme",
        "bce-scheme",
        "scheme-case",
        "no-signature",
        "extra-part",
        "slash-in-ak",
        "empty-ak",
        "upper-hex",
        "short-signature",
        "unsorted-headers",
        "duplicate-header",
        "upper-header",
        "no-headers",
        "empty-header",
        "no-millis",
        "lower-z",
        "offset",
        "space-separator",
        "impossible-date",
        "non-ascii-digits",
    ],
)
def test_malformed_authorization(authorization: str) -> None:
    assert rejection(Request(), authorization) == "malformed"


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Request().verify(WORKED_EXAMPLE_AUTHORIZATION, now=datetime(2026, 11, 28, 2, 30))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"access_key": "a/k"}, "access key"),
        ({"secret_key": ""}, "secret key"),
        ({"signed_headers": ()}, "at least one"),
        ({"signed_headers": ("host", "HOST")}, "twice"),
        ({"signed_headers": ("ho st",)}, "header name"),
    ],
)
def test_sign_rejects_what_no_verifier_accepts(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Request().sign(**kwargs)  # type: ignore[arg-type]


# --- key pairs ------------------------------------------------------------------------------


def secrets_of(text: str) -> dict[str, str]:
    return {key: grant.secret_key for key, grant in parse_key_grants(text).items()}


def test_parse_key_grants_inline_and_file_forms() -> None:
    assert secrets_of(" ak1 : sk1 , ak2:sk2 ") == {"ak1": "sk1", "ak2": "sk2"}
    key_file = "# issued by ops\nak1:sk1\n\n  ak2:s:k#2 ,ak3:sk3\r\n   # old: ak0:sk0\n"
    assert secrets_of(key_file) == {"ak1": "sk1", "ak2": "s:k#2", "ak3": "sk3"}
    assert parse_key_grants("") == {}


def test_parse_key_grants_reads_each_keys_vdn_scope() -> None:
    grants = parse_key_grants("ak1:sk1 vdns=7;10-20;3, ak2:s:k vdns=*\nak3:sk3\tvdns=5-5\nak4:sk4")
    assert grants["ak1"] == KeyGrant("sk1", VdnScope(ranges=((3, 3), (7, 7), (10, 20))))
    assert [
        vdn for vdn in range(25) if grants["ak1"].scope and grants["ak1"].scope.admits(vdn)
    ] == [3, 7, *range(10, 21)]
    assert grants["ak2"] == KeyGrant("s:k", EVERY_VDN)
    assert grants["ak3"].scope == VdnScope(ranges=((5, 5),))
    assert grants["ak4"].scope is None  # refused at start-up by api/auth.py
    assert str(grants["ak1"].scope) == "3;7;10-20"


@pytest.mark.parametrize(
    "text",
    ["ak1", "ak1:", ":sk1", "a/k:sk", "ak 1:sk", "ak1:s k", "ak1:sk1,ak1:sk2", "ak1:sk1\nak1:sk1"],
)
def test_parse_key_grants_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="line"):
        parse_key_grants(text)


@pytest.mark.parametrize("text", ["ak1:topsecret\nak1:topsecret", "ak1:top secret"])
def test_parse_key_grants_never_echoes_a_secret(text: str) -> None:
    # The message is meant for logs.
    with pytest.raises(ValueError, match="line") as caught:
        parse_key_grants(text)
    assert "top" not in str(caught.value)


def test_the_clients_stamps_are_a_millisecond_apart() -> None:
    """The API accepts a signature once: the client never signs two requests with one stamp,
    even when the clock has not moved (or moved back)."""
    moment = datetime(2026, 11, 28, 2, 30, 0, 123456, tzinfo=UTC)
    readings = iter([moment, moment, moment - timedelta(seconds=1), moment + timedelta(seconds=1)])
    clock = DistinctMoments(lambda: next(readings))
    stamps = [clock() for _ in range(4)]
    millisecond = timedelta(milliseconds=1)
    start = moment.replace(microsecond=123000)
    assert stamps == [
        start,
        start + millisecond,
        start + 2 * millisecond,
        start + timedelta(seconds=1),
    ]
