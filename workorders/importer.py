"""CSV / Excel import of hotline exports through a column-mapping profile (YAML).

A profile names the source columns of each field, the date formats and time zone, the
coordinate columns and what to do with rows without a point, and a category mapping. Every
import is checked whole first: the dry-run report lists every bad row (row, column, reason).
Nothing is stored when any row is bad, unless ``store_good`` asks to store the good ones.

Two targets: ``reports`` puts each row through the intake path (validated as a Report, onto
the reports stream, merged like any report); ``dataset`` keeps the rows as an external
dataset in Parquet under ``settings.var_dir/external/<dataset>/`` with their own agencies as
departments (for data from elsewhere, such as the New York 311 sample), read by the
assessment like the archive and never placed on the city's grids.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from core.config import get_settings
from core.keys import keys
from core.models import Channel, Report
from core.timeutil import now_ms

PROFILES = Path(__file__).resolve().parent / "profiles"
DATASET_FIELDS = {"created", "deadline", "closed", "dept", "category", "text", "county", "status"}
REPORT_FIELDS = set(Report.model_fields) - {
    "lon",
    "lat",
    "crs",
    "merge",
    "channel",
    "located",
} | {"occurred"}
DATE_FIELDS = {"created", "deadline", "closed", "occurred"}


class ProfileError(ValueError):
    """The profile or the file's header does not fit; nothing was read."""


class Coordinates(BaseModel):
    lat: str
    lon: str
    crs: str = Field(default="wgs84", pattern="^(wgs84|gcj02|cgcs2000)$")
    missing: str = Field(default="bad", pattern="^(bad|unlocated)$")
    bounds: tuple[float, float, float, float] | None = None


class Profile(BaseModel):
    name: str
    target: str = Field(pattern="^(dataset|reports)$")
    dataset: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]+$")
    channel: Channel = Channel.HOTLINE
    id_column: str
    encoding: str = "utf-8"
    timezone: str = "Asia/Shanghai"
    date_formats: list[str] = Field(min_length=1)
    columns: dict[str, str]
    required: list[str] = Field(default_factory=list)
    coordinates: Coordinates | None = None
    category_map: dict[str, str] = Field(default_factory=dict)
    # Only mapped categories are taken (a value missing from the map is a bad row).
    category_map_strict: bool = False
    # false: the export has no points at all (no coordinates); every row of a reports import
    # becomes an order held at city level, 待定位 (to be located), never given a guessed point.
    located: bool = True

    @field_validator("columns")
    @classmethod
    def _fields(cls, v: dict[str, str]) -> dict[str, str]:
        if len(set(v.values())) != len(v):
            raise ValueError("two source columns map to the same field")
        return v

    def field_column(self, field: str) -> str | None:
        return next((c for c, f in self.columns.items() if f == field), None)


def load_profile(name_or_path: str | Path) -> Profile:
    p = Path(name_or_path)
    if not p.suffix:
        p = PROFILES / f"{name_or_path}.yaml"
    try:
        with open(p, encoding="utf-8") as fh:
            prof = Profile.model_validate(yaml.safe_load(fh) or {})
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ProfileError(f"profile {p.name}: {exc}") from exc
    allowed = DATASET_FIELDS if prof.target == "dataset" else REPORT_FIELDS
    unknown = sorted(set(prof.columns.values()) - allowed)
    if unknown:
        raise ProfileError(f"profile {prof.name}: unknown fields {', '.join(unknown)}")
    if prof.target == "dataset" and not prof.dataset:
        raise ProfileError(f"profile {prof.name}: target dataset needs a dataset name")
    if prof.target == "reports" and prof.located and prof.coordinates is None:
        raise ProfileError(
            f"profile {prof.name}: reports need coordinate columns (or located: false when "
            "the export has no points)"
        )
    if not prof.located and prof.coordinates is not None:
        raise ProfileError(f"profile {prof.name}: located: false takes no coordinate columns")
    return prof


class BadRow(BaseModel):
    row: int  # as a spreadsheet numbers it: the header is row 1
    column: str
    reason: str
    value: str = ""


class ImportResult(BaseModel):
    profile: str
    target: str
    rows: int
    good: int
    bad: list[BadRow]
    unlocated: int = 0
    stored: int = 0
    dry_run: bool = True
    note: str = ""

    @property
    def bad_rows(self) -> int:
        return len({b.row for b in self.bad})


def _read(path: Path, prof: Profile) -> pd.DataFrame:
    if path.suffix.lower() in (".xlsx", ".xls"):
        return pd.read_excel(path, dtype=str).fillna("")
    try:
        return pd.read_csv(path, dtype=str, encoding=prof.encoding, keep_default_na=False)
    except UnicodeDecodeError as exc:
        raise ProfileError(
            f"{path.name} is not {prof.encoding} (byte {exc.start}); set the profile's encoding"
        ) from exc


def _to_ms(values: pd.Series, prof: Profile) -> pd.Series:
    """Epoch ms per value (NA where empty or unparsable), trying each format in turn."""
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in prof.date_formats:
        todo = out.isna() & values.ne("")
        if not todo.any():
            break
        out[todo] = pd.to_datetime(values[todo], format=fmt, errors="coerce")
    # A wall-clock time repeated at the end of daylight saving is read as the first one.
    local = out.dt.tz_localize(
        prof.timezone, ambiguous=np.ones(len(out), dtype=bool), nonexistent="shift_forward"
    )
    ms = local.dt.tz_convert("UTC").astype("int64") // 1_000_000
    return ms.where(out.notna()).astype("Int64")


def check(path: Path | str, prof: Profile) -> tuple[pd.DataFrame, list[BadRow], pd.Series]:
    """Parse and check every row: (parsed fields, bad rows, row is good)."""
    path = Path(path)
    src = _read(path, prof)
    needed = [prof.id_column, *prof.columns]
    if prof.coordinates:
        needed += [prof.coordinates.lat, prof.coordinates.lon]
    missing = [c for c in needed if c not in src.columns]
    if missing:
        raise ProfileError(
            f"{path.name}: columns {', '.join(repr(c) for c in missing)} named by profile "
            f"{prof.name} are not in the file"
        )
    bad: list[BadRow] = []
    rownum = src.index + 2

    def flag(mask: pd.Series, column: str, reason: str) -> None:
        for i in src.index[mask.fillna(False).to_numpy(dtype=bool)]:
            bad.append(
                BadRow(
                    row=int(rownum[i]),
                    column=column,
                    reason=reason,
                    value=str(src.at[i, column])[:80] if column in src else "",
                )
            )

    out = pd.DataFrame(index=src.index)
    ids = src[prof.id_column].str.strip()
    flag(ids.eq(""), prof.id_column, "id is empty")
    flag(ids.duplicated(keep="first") & ids.ne(""), prof.id_column, "id repeats an earlier row")
    out["external_id"] = ids
    for col, field in prof.columns.items():
        vals = src[col].str.strip()
        if field in prof.required:
            flag(vals.eq(""), col, f"{field} is required")
        if field in DATE_FIELDS:
            ms = _to_ms(vals, prof)
            flag(vals.ne("") & ms.isna(), col, f"not a date in {' or '.join(prof.date_formats)}")
            out[field] = ms
        elif field == "category" and prof.category_map:
            mapped = vals.map(prof.category_map)
            if prof.category_map_strict:
                flag(vals.ne("") & mapped.isna(), col, "category not in the profile's mapping")
            out[field] = mapped.fillna(vals)
        else:
            out[field] = vals
    if "created" in out:
        for f in ("closed", "deadline"):
            if f in out:
                col = prof.field_column(f) or f
                flag(
                    out[f].notna() & out["created"].notna() & (out[f] < out["created"]),
                    col,
                    f"{f} is before created",
                )
    out["lon"] = np.nan
    out["lat"] = np.nan
    out["located"] = False
    if prof.coordinates:
        c = prof.coordinates
        la_s, lo_s = src[c.lat].str.strip(), src[c.lon].str.strip()
        la = pd.to_numeric(la_s, errors="coerce")
        lo = pd.to_numeric(lo_s, errors="coerce")
        flag(la_s.ne("") & (la.isna() | ~np.isfinite(la)), c.lat, "latitude is not a number")
        flag(lo_s.ne("") & (lo.isna() | ~np.isfinite(lo)), c.lon, "longitude is not a number")
        half = "latitude and longitude must come together"
        flag(la_s.eq("") & lo_s.ne(""), c.lat, half)
        flag(la_s.ne("") & lo_s.eq(""), c.lon, half)
        none = la_s.eq("") & lo_s.eq("")
        if c.missing == "bad":
            flag(none, c.lat, "no coordinates")
        both = la.notna() & lo.notna()
        if c.bounds:
            x0, y0, x1, y1 = c.bounds
            outside = both & ~((lo >= x0) & (lo <= x1) & (la >= y0) & (la <= y1))
            flag(outside, c.lat, f"point outside the profile's bounds {list(c.bounds)}")
        else:
            flag(both & ((la.abs() > 90) | (lo.abs() > 180)), c.lat, "not a WGS84 coordinate")
        out["lon"], out["lat"] = lo.where(both), la.where(both)
        out["located"] = both
    bad_rows = {b.row for b in bad}
    good = ~pd.Series(rownum, index=src.index).isin(bad_rows)
    return out, sorted(bad, key=lambda b: (b.row, b.column)), good


def external_dir(dataset: str) -> Path:
    return Path(get_settings().var_dir) / "external" / dataset


def import_file(
    path: Path | str,
    profile: Profile | str,
    *,
    dry_run: bool = True,
    store_good: bool = False,
    r: redis.Redis | None = None,
) -> ImportResult:
    """Check a file and, unless it is a dry run, store it: all rows when every row is good,
    or only the good ones when ``store_good`` says so."""
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    parsed, bad, good = check(path, prof)
    res = ImportResult(
        profile=prof.name,
        target=prof.target,
        rows=len(parsed),
        good=int(good.sum()),
        bad=bad,
        unlocated=int((good & ~parsed["located"]).sum()),
        dry_run=dry_run,
    )
    if prof.target == "reports":
        reports = _as_reports(parsed, prof, good, res)
        res.good = len(reports)
    if dry_run:
        return res
    if res.bad and not store_good:
        res.note = f"nothing stored: {res.bad_rows} bad rows (fix them, or store the good ones)"
        return res
    if prof.target == "dataset":
        res.stored = _store_dataset(parsed[good], prof)
    else:
        res.stored = _store_reports(r, reports)
    return res


def _store_dataset(rows: pd.DataFrame, prof: Profile) -> int:
    from workorders.archive import write_rows
    from workorders.assessment import frame

    assert prof.dataset is not None
    recs: list[dict[str, Any]] = []
    for i, x in rows.iterrows():
        recs.append(
            {
                "id": f"{prof.dataset}:{x['external_id']}",
                "source": prof.dataset,
                "channel": prof.channel.value,
                "category": x.get("category") or "",
                "dept": x.get("dept") or "",
                "county": x.get("county") or "",
                "township": "",
                "status": "closed" if pd.notna(x.get("closed")) else "open",
                "created_ms": x.get("created"),
                "deadline_ms": x.get("deadline"),
                "closed_ms": x.get("closed"),
                "accept_ms": None,
                "handling_ms": None,
                "check_ms": None,
                "satisfaction": None,
                "rework": 0,
                "false_closure": False,
                "lon": x["lon"],
                "lat": x["lat"],
            }
        )
        _ = i
    df = frame(recs)
    df["located"] = rows["located"].to_numpy(dtype=bool)
    df["text"] = rows.get("text", pd.Series("", index=rows.index)).to_numpy()
    base = external_dir(prof.dataset)
    # A re-import replaces the dataset: the export is the source of truth for it.
    for old in base.glob("month=*/part-*.parquet"):
        old.unlink()
    write_rows(df, base, tag=prof.name)
    return len(df)


def _as_reports(
    parsed: pd.DataFrame, prof: Profile, good: pd.Series, res: ImportResult
) -> list[tuple[str, Report]]:
    from workorders.service import policy

    out: list[tuple[str, Report]] = []
    col_of = {f: c for c, f in prof.columns.items()}
    for i in parsed.index[good.to_numpy(dtype=bool)]:
        x = parsed.loc[i]
        data: dict[str, Any] = {
            "channel": prof.channel.value,
            "external_id": x["external_id"],
            "merge": policy().merge.enabled,
        }
        if bool(x["located"]) and prof.coordinates is not None:
            data.update(lon=float(x["lon"]), lat=float(x["lat"]), crs=prof.coordinates.crs)
        else:
            # A row without a point (allowed by the profile) is held at city level, 待定位.
            data["located"] = False
        for f in prof.columns.values():
            v = x.get(f)
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v == "":
                continue
            data["occurred_ms" if f == "occurred" else f] = int(v) if f in DATE_FIELDS else v
        try:
            rep = Report.model_validate(data)
        except ValidationError as exc:
            for e in exc.errors():
                field = str(e["loc"][0]) if e["loc"] else ""
                res.bad.append(
                    BadRow(
                        row=int(i) + 2,
                        column=col_of.get(field, field or "(row)"),
                        reason=e["msg"],
                    )
                )
            continue
        out.append((f"IM-{prof.name}-{x['external_id']}", rep))
    res.bad.sort(key=lambda b: (b.row, b.column))
    return out


def _store_reports(r: redis.Redis | None, reports: list[tuple[str, Report]]) -> int:
    from core.store import get_redis

    r = r or get_redis()
    pipe = r.pipeline(transaction=False)
    for rid, rep in reports:
        pipe.xadd(
            keys().reports,
            {"report_id": rid, "data": rep.model_dump_json(), "received_ms": str(now_ms())},
        )
    pipe.execute()
    return len(reports)


def read_dataset(dataset: str) -> pd.DataFrame:
    """An imported external dataset's rows (with ``located`` and ``text``)."""
    from workorders.archive import read_archive
    from workorders.assessment import COLUMNS

    return read_archive(base=external_dir(dataset), columns=[*COLUMNS, "located", "text"])
