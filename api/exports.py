"""An export: the rows of a read interface as a file, CSV or NDJSON, streamed as they are read.

The statistics and the history have one each (api/routes/statistics_export.py,
api/routes/history_export.py; docs/api.md, "Exports"): the numbers their JSON interfaces answer,
a row per campaign and batch, or per campaign and day (or hour), as a file to download.

- **The format**: ``format=csv`` or ``format=ndjson``; absent or empty, the ``Accept`` header
  chooses (``text/csv``, ``application/x-ndjson`` or ``application/ndjson``, by their q);
  neither named, CSV. The answer names a file (``Content-Disposition: attachment``).
- **CSV** (RFC 4180, UTF-8, CRLF): a header row naming the columns with the JSON interfaces'
  names, then a row per line; an absent value (``null`` in JSON) is an empty field.
- **NDJSON**: one JSON object per line (LF), with the members of the JSON interfaces, in their
  order; no header.

**Memory.** Rows are encoded and sent a part at a time, the engine reading one part ahead
(engine/exports.py), and uvicorn waits on a send while the client's socket is full: a slow
client slows the reads, it does not pile rows up. What a process holds is two parts, whatever
the size of the export.

**A failure mid-stream.** The status line and the first part go out only once the first part is
read, so a failure up to there gets the answer the JSON interfaces give (503 when Redis does not
answer, 500 for counters it cannot read). A failure after that cannot change the status any
more: the response then ends without the end of its body, the connection is closed without the
last, empty chunk of the chunked transfer. Every HTTP client reports that as a transfer cut
short (httpx raises ``RemoteProtocolError``, curl exits with 18, a browser marks the download
failed), so a broken export never looks like a complete file; and the file itself carries no
trailer, so a complete one opens as it is. It is logged and counted in
``isales_api_exports_broken_off_total{interface}``.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.responses import Response, StreamingResponse

from isales_stats.api.errors import ErrorCode
from isales_stats.api.metrics import EXPORT_ROWS, EXPORTS_BROKEN_OFF
from isales_stats.api.parameters import Word
from isales_stats.core.interface import EXPORT_FORMATS

log = logging.getLogger(__name__)

Row = dict[str, Any]


CSV, NDJSON = EXPORT_FORMATS
MEDIA_TYPES = {CSV: "text/csv; charset=utf-8", NDJSON: "application/x-ndjson"}
# What an Accept header may name for each format (application/ndjson: the newer name).
_ACCEPTED = {"text/csv": CSV, "application/x-ndjson": NDJSON, "application/ndjson": NDJSON}
# What a file name keeps of an id; the rest becomes "_".
_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]")
_FILE_NAME_PART = 40


@dataclass(frozen=True)
class FormatParameter(Word):
    """``format``: one of the ``choices``, or None when empty or absent (``Accept`` decides)."""

    def value(self, text: str) -> Any:
        return super().value(text) if text else None


FORMAT = FormatParameter(
    "format",
    "format",
    16,
    "csv (a header row, then a row per line) or ndjson (a JSON object per line); empty or "
    "absent: the Accept header's choice of text/csv and application/x-ndjson, else csv.",
    choices=EXPORT_FORMATS,
)
FORMAT_ERROR = (ErrorCode.WRONG_VALUE, "format must be csv or ndjson, got 'xlsx'")


def negotiated_format(asked: str | None, accept: Sequence[str]) -> str:
    """The format asked for by the query, else the one ``accept`` (the Accept headers)
    prefers (the highest q, the first named on a tie), else CSV."""
    if asked is not None:
        return asked
    best: tuple[float, int, str] | None = None
    ranges = [item for header in accept for item in header.split(",")]
    for position, media_range in enumerate(ranges):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        export_format = _ACCEPTED.get(media_type.lower())
        quality = _quality(parameters)
        if export_format is None or quality <= 0:
            continue
        if best is None or (quality, -position) > (best[0], best[1]):
            best = (quality, -position, export_format)
    return best[2] if best else CSV


def _quality(parameters: Sequence[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def file_name(parts: Sequence[str | int | None], export_format: str) -> str:
    """``statistics-1-C1001-2026-12-08.csv``: the parts given, each kept to safe characters."""
    kept = [
        _UNSAFE_IN_FILE_NAMES.sub("_", str(part))[:_FILE_NAME_PART]
        for part in parts
        if part is not None
    ]
    return f"{'-'.join(kept)}.{export_format}"


def _csv_rows(columns: Sequence[str]) -> Callable[[Sequence[Row]], bytes]:
    def encode(rows: Sequence[Row]) -> bytes:
        text = io.StringIO()
        csv.writer(text, lineterminator="\r\n").writerows(
            [row[column] for column in columns] for row in rows
        )
        return text.getvalue().encode()

    return encode


def _ndjson_rows(rows: Sequence[Row]) -> bytes:
    return b"".join(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows)


def _csv_header(columns: Sequence[str]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerow(columns)
    return text.getvalue().encode()


async def export_response(
    interface: str,
    parts: AsyncIterator[Sequence[Row]],
    columns: Sequence[str],
    export_format: str,
    name: str,
) -> Response:
    """The streamed answer of an export: ``parts`` of rows (each row's members ``columns``, in
    order), encoded in ``export_format``, as the file ``name``. Awaits the first part before
    answering: a failure there raises, and gets its error answer (module docstring)."""
    encode = _csv_rows(columns) if export_format == CSV else _ndjson_rows
    head = _csv_header(columns) if export_format == CSV else b""
    first = await anext(parts, None)

    async def body() -> AsyncIterator[bytes]:
        rows = 0
        try:
            if first is not None:
                rows += len(first)
                yield head + encode(first)
            elif head:
                yield head
            async for part in parts:
                rows += len(part)
                yield encode(part)
        except Exception as error:
            EXPORTS_BROKEN_OFF.labels(interface).inc()
            # uvicorn logs the traceback as it closes the connection.
            log.error(
                "%s: broken off after %d rows, closing the connection: %r", interface, rows, error
            )
            raise
        finally:
            EXPORT_ROWS.labels(interface).inc(rows)

    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[export_format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
