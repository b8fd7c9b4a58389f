-- One row per patient: the measurements of both tables, a size bucket derived here and the
-- diagnosis (a text target; train.positive says which value is the positive class).
-- Runs unchanged on SQLite and PostgreSQL. Bound parameters (params.yaml features.sql_params):
--   :small_area  mean nucleus area below which a tumour is 'small'
--   :large_area  mean nucleus area from which a tumour is 'large' (between: 'medium')
SELECT
    p.patient_id,
    p.diagnosis,
    CASE
        WHEN p.mean_area < :small_area THEN 'small'
        WHEN p.mean_area < :large_area THEN 'medium'
        ELSE 'large'
    END AS size_bucket,
    p.mean_texture,
    p.mean_smoothness,
    p.mean_compactness,
    p.mean_concavity,
    p.mean_concave_points,
    p.mean_symmetry,
    p.mean_fractal_dimension,
    m.radius_error,
    m.texture_error,
    m.area_error,
    m.smoothness_error,
    m.concavity_error,
    m.worst_radius,
    m.worst_texture,
    m.worst_smoothness,
    m.worst_concavity,
    m.worst_concave_points,
    m.worst_symmetry
FROM patients AS p
JOIN measurements AS m ON m.patient_id = p.patient_id
