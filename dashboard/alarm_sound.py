"""The alarm pop-up's alert tone, generated here so the screen needs no sound from outside.

Run ``python -m dashboard.alarm_sound`` to rewrite ``assets/alarm.wav``.
"""

from __future__ import annotations

import io
import math
import wave
from pathlib import Path

SOUND_PATH = Path(__file__).resolve().parent / "assets" / "alarm.wav"
RATE = 8000
# Two-tone siren beeps (high, low, pause): unlike any system sound, audible across a room.
PATTERN = ((1400.0, 0.18), (950.0, 0.18), (0.0, 0.24))
AMPLITUDE = 0.6


def alarm_wav(repeats: int = 2) -> bytes:
    """The tone as a mono 8-bit PCM WAV (about 10 kB; the page loops it)."""
    frames = bytearray()
    for _ in range(repeats):
        for freq, secs in PATTERN:
            n = int(RATE * secs)
            for i in range(n):
                # A short fade at each edge avoids clicks between the tones.
                env = min(1.0, i / 80, (n - i) / 80)
                s = math.sin(2 * math.pi * freq * i / RATE) if freq else 0.0
                frames.append(128 + int(127 * AMPLITUDE * env * s))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    return buf.getvalue()


def write_sound(path: Path = SOUND_PATH) -> Path:
    path.write_bytes(alarm_wav())
    return path


if __name__ == "__main__":
    print(write_sound())
