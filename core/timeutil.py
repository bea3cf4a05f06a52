"""Time: stored as UTC epoch milliseconds, shown in Asia/Shanghai with its offset."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Readings before this are refused: no device of this platform reported before 2000.
EPOCH_FLOOR_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
# Device clocks drift; more than this into the future is a bad timestamp.
FUTURE_SLACK_MS = 5 * 60 * 1000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class TimestampError(ValueError):
    """A timestamp that cannot be trusted; the message says why."""


def normalize_epoch(value: float | int | str, *, now: int | None = None) -> int:
    """Epoch in seconds, milliseconds or microseconds (or ISO 8601) to UTC epoch ms.

    The unit is told by magnitude; a result before 2000 or in the future is refused.
    """
    now = now_ms() if now is None else now
    if isinstance(value, str):
        text = value.strip()
        try:
            num = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as exc:
                raise TimestampError(
                    f"timestamp {value!r} is neither a number nor ISO 8601"
                ) from exc
            if dt.tzinfo is None:
                # Device firmware (Tasmota) reports local wall time without an offset.
                dt = dt.replace(tzinfo=SHANGHAI)
            ms = int(dt.timestamp() * 1000)
            return _check_range(ms, now, value)
        value = num
    if isinstance(value, bool) or not math.isfinite(float(value)):
        raise TimestampError(f"timestamp {value!r} is not a finite number")
    v = float(value)
    if v < 0:
        raise TimestampError(f"timestamp {value!r} is negative")
    if v < 1e11:  # seconds (until year 5138)
        ms = int(round(v * 1000))
    elif v < 1e14:  # milliseconds
        ms = int(round(v))
    elif v < 1e17:  # microseconds
        ms = int(round(v / 1000))
    else:  # nanoseconds
        ms = int(round(v / 1_000_000))
    return _check_range(ms, now, value)


def _check_range(ms: int, now: int, original: object) -> int:
    if ms < EPOCH_FLOOR_MS:
        raise TimestampError(f"timestamp {original!r} is before 2000-01-01")
    if ms > now + FUTURE_SLACK_MS:
        raise TimestampError(f"timestamp {original!r} is in the future")
    return ms


def fmt_local(ms: int | None, *, with_offset: bool = True) -> str:
    """Epoch ms as Asia/Shanghai wall time, with its explicit +08:00 offset."""
    if ms is None:
        return ""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(SHANGHAI)
    if with_offset:
        return dt.strftime("%Y-%m-%d %H:%M:%S%z")[:-2] + ":" + dt.strftime("%z")[-2:]
    return dt.strftime("%Y-%m-%d %H:%M:%S")
