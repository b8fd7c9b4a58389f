-- Tables loaded from data/raw/*.parquet. Runs unchanged on SQLite and PostgreSQL.
-- The loader reads column names, types and NOT NULL from here to validate the raw files.
-- Types used: TEXT, INTEGER, DOUBLE PRECISION, TIMESTAMP WITH TIME ZONE.

CREATE TABLE airlines (
    carrier TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (carrier)
);

CREATE TABLE airports (
    faa TEXT NOT NULL,
    name TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    alt INTEGER NOT NULL,
    tz INTEGER NOT NULL,
    dst TEXT NOT NULL,
    tzone TEXT,
    PRIMARY KEY (faa)
);

CREATE TABLE planes (
    tailnum TEXT NOT NULL,
    year INTEGER,
    type TEXT NOT NULL,
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    engines INTEGER NOT NULL,
    seats INTEGER NOT NULL,
    speed DOUBLE PRECISION,
    engine TEXT NOT NULL,
    PRIMARY KEY (tailnum)
);

CREATE TABLE weather (
    origin TEXT NOT NULL,
    year INTEGER NOT NULL,
    month INTEGER NOT NULL,
    day INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    temp DOUBLE PRECISION,
    dewp DOUBLE PRECISION,
    humid DOUBLE PRECISION,
    wind_dir DOUBLE PRECISION,
    wind_speed DOUBLE PRECISION,
    wind_gust DOUBLE PRECISION,
    precip DOUBLE PRECISION NOT NULL,
    pressure DOUBLE PRECISION,
    visib DOUBLE PRECISION NOT NULL,
    time_hour TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (origin, time_hour)
);

CREATE TABLE flights (
    year INTEGER NOT NULL,
    month INTEGER NOT NULL,
    day INTEGER NOT NULL,
    dep_time INTEGER,
    sched_dep_time INTEGER NOT NULL,
    dep_delay DOUBLE PRECISION,
    arr_time INTEGER,
    sched_arr_time INTEGER NOT NULL,
    arr_delay DOUBLE PRECISION,
    carrier TEXT NOT NULL,
    flight INTEGER NOT NULL,
    tailnum TEXT,
    origin TEXT NOT NULL,
    dest TEXT NOT NULL,
    air_time DOUBLE PRECISION,
    distance DOUBLE PRECISION NOT NULL,
    hour INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    time_hour TIMESTAMP WITH TIME ZONE NOT NULL
);

CREATE INDEX flights_origin_time_hour ON flights (origin, time_hour);
