"""Header times read alike on Python 3.10 (the Jetson's) and later: what cameras write, not only what
``datetime.isoformat`` writes. The packaging test runs this file under Python 3.10 as well."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from skyedge.fits_time import header_mjd, header_time, parse_iso_utc

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T01:00:00", datetime(2026, 11, 23, 1, 0, 0, tzinfo=UTC)),
        ("2026-11-23T01:00:00.5", datetime(2026, 11, 23, 1, 0, 0, 500000, tzinfo=UTC)),  # 3.10's fromisoformat refuses
        ("2026-11-23T01:00:00.12", datetime(2026, 11, 23, 1, 0, 0, 120000, tzinfo=UTC)),
        ("2026-11-23T01:00:00.1234567", datetime(2026, 11, 23, 1, 0, 0, 123457, tzinfo=UTC)),  # rounded
        ("2026-11-23 01:00:00Z", datetime(2026, 11, 23, 1, 0, 0, tzinfo=UTC)),
        ("2017-12-19T18:33:43.317-0700", datetime(2017, 12, 20, 1, 33, 43, 317000, tzinfo=UTC)),  # MicroObservatory
        ("2026-11-23T01:00:00+05:30", datetime(2026, 11, 22, 19, 30, 0, tzinfo=UTC)),
        ("2026-11-23T01:00", datetime(2026, 11, 23, 1, 0, 0, tzinfo=UTC)),
        ("  2026-11-23T01:00:00  ", datetime(2026, 11, 23, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_iso_times_as_cameras_write_them(text, expected):
    got = parse_iso_utc(text)
    assert got == expected and got.utcoffset() is not None, text


@pytest.mark.parametrize("text", ["2026-11-23", "2026-13-45T99:00:00", "23/11/26", "", "now", "2026-11-23T01:00:00 junk", None])
def test_what_is_no_time_of_day_is_none(text):
    assert parse_iso_utc(text) is None


def test_header_dates_mjds_and_the_older_split_convention():
    assert header_time({"DATE-OBS": "2026-11-23", "TIME-OBS": "01:02:03.5"}, "DATE-OBS") == datetime(2026, 11, 23, 1, 2, 3, 500000, tzinfo=UTC)
    assert header_time({"DATE-OBS": "2026-11-23", "UT": "01:02:03"}, "DATE-OBS") == datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)
    assert header_time({"DATE-OBS": "2026-11-23"}, "DATE-OBS") is None  # a date is not a time
    assert header_time({}, "DATE-OBS") is None
    mjd = header_mjd({"MJD-OBS": 61367.25}, "MJD-OBS")
    assert abs(mjd - datetime(2026, 11, 23, 6, tzinfo=UTC)) < timedelta(milliseconds=1)
    assert header_mjd({"MJD-OBS": "61367.25"}, "MJD-OBS") == mjd
    for bad in (float("nan"), float("inf"), -1.0, 1e300, True, "abc", None):
        assert header_mjd({"MJD-OBS": bad}, "MJD-OBS") is None, bad
