"""Time normalisation, local display and configuration sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings, get_settings, reset_settings
from core.timeutil import TimestampError, fmt_local, normalize_epoch

NOW = 1_764_720_000_000  # 2025-12-03T00:00:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_764_000_000, 1_764_000_000_000),  # seconds
        (1_764_000_000.25, 1_764_000_000_250),  # seconds with fraction
        (1_764_000_000_123, 1_764_000_000_123),  # milliseconds
        (1_764_000_000_123_456, 1_764_000_000_123),  # microseconds
        (1_764_000_000_123_456_789, 1_764_000_000_123),  # nanoseconds
        ("1764000000", 1_764_000_000_000),
        ("2025-11-24T16:00:00Z", 1_764_000_000_000),
        # Local wall time without offset (Tasmota) is Asia/Shanghai.
        ("2025-11-25T00:00:00", 1_764_000_000_000),
    ],
)
def test_epoch_units_are_told_apart(value: object, expected: int) -> None:
    assert normalize_epoch(value, now=NOW) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (NOW // 1000 + 3600, "future"),
        (946_684_799, "before 2000"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (-5, "negative"),
        ("yesterday", "neither a number nor ISO 8601"),
    ],
)
def test_bad_timestamps_are_refused_with_reason(value: object, reason: str) -> None:
    with pytest.raises(TimestampError, match=reason):
        normalize_epoch(value, now=NOW)  # type: ignore[arg-type]


def test_local_time_has_explicit_offset() -> None:
    assert fmt_local(1_764_000_000_000) == "2025-11-25 00:00:00+08:00"
    assert fmt_local(None) == ""


def test_yaml_config_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "gridcc.yaml"
    cfg.write_text("REDIS_URL: redis://10.1.2.3:6379/0\nport: 9001\n", encoding="utf-8")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.setenv("GRIDCC_CONFIG", str(cfg))
    reset_settings()
    try:
        s = get_settings()
        assert s.redis_url == "redis://10.1.2.3:6379/0"
        assert s.port == 9001
        monkeypatch.setenv("PORT", "9002")
        reset_settings()
        assert get_settings().port == 9002  # the environment wins over the file
    finally:
        reset_settings()


def test_bad_port_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "99999")
    with pytest.raises(ValueError, match="port"):
        Settings()
