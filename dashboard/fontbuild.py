"""Build the bundled CJK web font: a subset of Noto Sans CJK SC (SIL OFL 1.1).

Wall screens must not depend on the kiosk's fonts, so the page ships its own face:
every GB 2312 character (the 6,763 common hanzi and its symbols), ASCII and Latin-1,
and every character of the label catalogue and the mode plans. Rarer characters fall
back to the screen's own fonts through the CSS font stack.

Run when the labels gain new characters (needs fonttools and brotli, development only):

    python -m dashboard.fontbuild /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.config import ROOT

OUT_DIR = Path(__file__).resolve().parent / "assets" / "fonts"
FAMILY_IN_TTC = "Noto Sans CJK SC"


def gb2312_chars() -> set[str]:
    out: set[str] = set()
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                out.add(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return out


def catalogue_chars() -> set[str]:
    chars: set[str] = set()
    for path in (ROOT / "i18n" / "labels.yaml", ROOT / "layouts" / "modes.yaml"):
        chars |= set(path.read_text(encoding="utf-8"))
    return chars


def wanted_text() -> str:
    chars = gb2312_chars() | catalogue_chars()
    chars |= {chr(c) for c in range(0x20, 0x7F)} | {chr(c) for c in range(0xA0, 0x100)}
    chars |= {chr(c) for c in range(0x3000, 0x3040)} | {chr(c) for c in range(0xFF00, 0xFFF0)}
    return "".join(sorted(c for c in chars if c.isprintable()))


def build(source: Path, out: Path) -> Path:
    from fontTools import subset
    from fontTools.ttLib import TTCollection, TTFont

    if source.suffix.lower() == ".ttc":
        names = [f["name"].getDebugName(1) for f in TTCollection(str(source)).fonts]
        if FAMILY_IN_TTC not in names:
            raise SystemExit(
                f"{source} holds no {FAMILY_IN_TTC} face (it has {', '.join(map(str, names))})"
            )
        font = TTFont(str(source), fontNumber=names.index(FAMILY_IN_TTC))
    else:
        font = TTFont(str(source))
    opts = subset.Options()
    opts.flavor = "woff2"
    opts.layout_features = ["*"]
    opts.name_IDs = ["*"]
    opts.notdef_outline = True
    sub = subset.Subsetter(options=opts)
    sub.populate(text=wanted_text())
    sub.subset(font)
    out.parent.mkdir(parents=True, exist_ok=True)
    font.flavor = "woff2"
    font.save(str(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="NotoSansCJK-Regular.ttc or NotoSansCJKsc-*.otf")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "gridcc-cjk-regular.woff2")
    args = ap.parse_args()
    path = build(args.source, args.out)
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
