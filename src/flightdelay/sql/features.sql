-- One row per flight with its label and only what is known before departure.
-- Runs unchanged on SQLite and PostgreSQL. Bound parameters (params.yaml features.sql_params;
-- booleans are bound as 1/0):
--   :threshold_minutes     arrival delay at or above which a flight counts as delayed
--   :cancelled_as_delayed  1: a flight with no arrival (cancelled/diverted) is delayed; 0: dropped
-- Never selected (known only after departure): dep_time, dep_delay, arr_time, air_time, arr_delay.
SELECT
    f.year,
    f.month,
    f.day,
    f.carrier,
    f.flight,
    f.tailnum,
    f.origin,
    f.dest,
    f.time_hour,
    al.name AS carrier_name,
    -- day of week, 0 = Sunday (Sakamoto's method: integer arithmetic that both engines share)
    ((CASE WHEN f.month < 3 THEN f.year - 1 ELSE f.year END)
      + (CASE WHEN f.month < 3 THEN f.year - 1 ELSE f.year END) / 4
      - (CASE WHEN f.month < 3 THEN f.year - 1 ELSE f.year END) / 100
      + (CASE WHEN f.month < 3 THEN f.year - 1 ELSE f.year END) / 400
      + (CASE f.month WHEN 1 THEN 0 WHEN 2 THEN 3 WHEN 3 THEN 2 WHEN 4 THEN 5 WHEN 5 THEN 0
                      WHEN 6 THEN 3 WHEN 7 THEN 5 WHEN 8 THEN 1 WHEN 9 THEN 4 WHEN 10 THEN 6
                      WHEN 11 THEN 2 ELSE 4 END)
      + f.day) % 7 AS day_of_week,
    f.hour AS dep_hour,
    CASE
        WHEN f.hour < 9 THEN 'morning'
        WHEN f.hour < 13 THEN 'midday'
        WHEN f.hour < 18 THEN 'afternoon'
        ELSE 'evening'
    END AS dep_hour_bucket,
    (f.sched_dep_time / 100) * 60 + f.sched_dep_time % 100 AS sched_dep_minutes,
    (f.sched_arr_time / 100) * 60 + f.sched_arr_time % 100 AS sched_arr_minutes,
    f.distance,
    w.temp,
    w.dewp,
    w.humid,
    w.wind_speed,
    w.wind_gust,
    w.precip,
    w.pressure,
    w.visib,
    p.year AS plane_year,
    p.seats,
    p.manufacturer,
    p.engine,
    p.type AS plane_type,
    ap.lat AS dest_lat,
    ap.lon AS dest_lon,
    ap.alt AS dest_alt,
    CASE
        WHEN f.arr_delay IS NULL THEN :cancelled_as_delayed
        WHEN f.arr_delay >= :threshold_minutes THEN 1
        ELSE 0
    END AS delayed
FROM flights AS f
LEFT JOIN weather AS w ON w.origin = f.origin AND w.time_hour = f.time_hour
LEFT JOIN planes AS p ON p.tailnum = f.tailnum
LEFT JOIN airports AS ap ON ap.faa = f.dest
LEFT JOIN airlines AS al ON al.carrier = f.carrier
WHERE f.arr_delay IS NOT NULL OR :cancelled_as_delayed = 1
