"""The disk spool on its own: order, the replay cursor across restarts, torn records
from a crash, the size bound and the one-process lock."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis

from core.config import get_settings
from core.keys import keys
from core.models import Reading
from core.timeutil import now_ms
from devices.registry import Device, register_device
from ingest import spool as spool_mod
from ingest.mqtt_ingest import Incoming, MqttIngest, Processor
from ingest.spool import Spool, SpoolError, SpoolFull, SpoolRecord, encode_record, safe_name


def _recs(start: int, n: int) -> list[SpoolRecord]:
    return [
        SpoolRecord(
            f"zigbee2mqtt/d{i % 3}".encode(), f'{{"n": {i:04d}}}'.encode(), 1_700_000_000_000 + i, 1
        )
        for i in range(start, start + n)
    ]


def _drain(sp: Spool, chunk: int = 7) -> list[SpoolRecord]:
    out: list[SpoolRecord] = []
    while True:
        recs, end = sp.read(chunk)
        if not recs:
            return out
        assert end is not None
        out.extend(recs)
        sp.commit(end)


def test_records_come_back_in_order_across_segments_and_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 300)  # a few records a segment
    sp = Spool(tmp_path / "s")
    for i in range(0, 40, 5):
        sp.append(_recs(i, 5))
    assert len(list((tmp_path / "s").glob("*.seg"))) > 3
    # Replay part of it, then "crash" before the rest: the cursor remembers.
    recs, end = sp.read(12)
    assert end is not None
    sp.commit(end)
    sp.close()
    sp = Spool(tmp_path / "s")
    assert sp.pending()
    sp.append(_recs(40, 3))  # newer than everything before
    rest = _drain(sp)
    assert [r.payload for r in recs + rest] == [r.payload for r in _recs(0, 43)]
    assert rest[0] == _recs(len(recs), 1)[0]  # topic, payload, receive time and QoS kept
    assert not sp.pending() and list((tmp_path / "s").glob("*.seg")) == []
    assert sp.size_bytes == 0
    sp.close()
    # Segment numbers keep growing after everything was replayed and deleted, so a
    # new segment is never mistaken for one the cursor has passed.
    sp = Spool(tmp_path / "s")
    sp.append(_recs(100, 2))
    sp.close()
    sp = Spool(tmp_path / "s")
    assert [r.payload for r in _drain(sp)] == [r.payload for r in _recs(100, 2)]
    sp.close()


def test_a_record_torn_by_a_crash_is_skipped_and_kept_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sp = Spool(tmp_path / "s")
    sp.append(_recs(0, 3))
    sp.close()
    (seg,) = (tmp_path / "s").glob("*.seg")
    torn = encode_record(_recs(3, 1)[0])[:-4]
    with open(seg, "ab") as fh:
        fh.write(torn)  # the process died in the middle of this write, before any ack
    caplog.set_level(logging.WARNING, logger="ingest.spool")
    sp = Spool(tmp_path / "s")
    sp.append(_recs(10, 2))  # after a restart appends go to a new segment
    got = _drain(sp)
    assert [r.payload for r in got] == [r.payload for r in _recs(0, 3) + _recs(10, 2)]
    assert "torn record" in caplog.text
    assert (tmp_path / "s" / (seg.stem + ".damaged")).read_bytes().endswith(torn)
    sp.close()


def test_full_spool_refuses_the_whole_batch(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s", max_bytes=1000)
    size = len(encode_record(_recs(0, 1)[0]))
    n = 1000 // size
    sp.append(_recs(0, n))
    with pytest.raises(SpoolFull, match="full"):
        sp.append(_recs(n, 2))
    assert sp.size_bytes == n * size  # nothing of the refused batch was written
    assert [r.payload for r in _drain(sp)] == [r.payload for r in _recs(0, n)]
    sp.append(_recs(n, 2))  # replayed records free their room
    sp.close()


def test_one_spool_one_process(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s")
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path / "s")
    sp.close()
    Spool(tmp_path / "s").close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpoolError, match="not usable"):
        Spool(tmp_path / "file" / "s")
    assert safe_name("gridcc-ingest-gc-host") == "gridcc-ingest-gc-host"
    assert safe_name("a/b:c d") == "a_b_c_d"
    with pytest.raises(ValueError, match="too long"):
        encode_record(SpoolRecord(b"t" * 70_000, b"", 0, 1))


def test_replay_after_a_crash_mid_replay_writes_each_message_once(
    r: redis.Redis, tmp_path: Path
) -> None:
    dev = register_device(
        r, Device(id="gas-sp", type="gas", profile="gas_z2m", lon=113.65, lat=34.76)
    )
    topic = (get_settings().mqtt_root + dev.topic).encode()
    t0 = now_ms() - 60_000
    # No device time in the payload: identity comes from the receive time the spool kept.
    recs = [SpoolRecord(topic, f'{{"gas_value": {i}}}'.encode(), t0 + i, 1) for i in range(20)]
    sp = Spool(tmp_path / "s")
    sp.append(recs)
    # The first chunk reached Redis, then the process died before the cursor moved.
    first, _end = sp.read(8)
    Processor(r).write([Incoming(x.topic, x.payload, x.received_ms, 0, 1) for x in first])
    sp.close()

    ing = MqttIngest(r, client_id="spool-replay", spool_dir=tmp_path / "s")
    ing.spool = Spool(tmp_path / "s")
    assert ing._replay() is True
    values = [
        Reading.model_validate_json(f[b"data"]).metrics["ch4_lel"]
        for _, f in r.xrange(keys().readings)
    ]
    assert values == [float(i) for i in range(20)]
    assert (ing.processor.stats.replayed, ing.processor.stats.duplicates) == (20, 8)
    assert not ing.spool.pending()
    ing.spool.close()
