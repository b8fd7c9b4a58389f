-- The breast-cancer example's tables (data/external/, made by examples/breast_cancer/make_data.py).
-- Runs unchanged on SQLite and PostgreSQL; the loader checks every raw value against these types.

CREATE TABLE patients (
    patient_id INTEGER NOT NULL,
    diagnosis TEXT NOT NULL,             -- the target: 'malignant' or 'benign'
    mean_radius DOUBLE PRECISION NOT NULL,
    mean_texture DOUBLE PRECISION NOT NULL,
    mean_perimeter DOUBLE PRECISION NOT NULL,
    mean_area DOUBLE PRECISION NOT NULL,
    mean_smoothness DOUBLE PRECISION NOT NULL,
    mean_compactness DOUBLE PRECISION NOT NULL,
    mean_concavity DOUBLE PRECISION NOT NULL,
    mean_concave_points DOUBLE PRECISION NOT NULL,
    mean_symmetry DOUBLE PRECISION NOT NULL,
    mean_fractal_dimension DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (patient_id)
);

CREATE TABLE measurements (
    patient_id INTEGER NOT NULL REFERENCES patients (patient_id),
    radius_error DOUBLE PRECISION NOT NULL,
    texture_error DOUBLE PRECISION NOT NULL,
    perimeter_error DOUBLE PRECISION NOT NULL,
    area_error DOUBLE PRECISION NOT NULL,
    smoothness_error DOUBLE PRECISION NOT NULL,
    compactness_error DOUBLE PRECISION NOT NULL,
    concavity_error DOUBLE PRECISION NOT NULL,
    concave_points_error DOUBLE PRECISION NOT NULL,
    symmetry_error DOUBLE PRECISION NOT NULL,
    fractal_dimension_error DOUBLE PRECISION NOT NULL,
    worst_radius DOUBLE PRECISION NOT NULL,
    worst_texture DOUBLE PRECISION NOT NULL,
    worst_perimeter DOUBLE PRECISION NOT NULL,
    worst_area DOUBLE PRECISION NOT NULL,
    worst_smoothness DOUBLE PRECISION NOT NULL,
    worst_compactness DOUBLE PRECISION NOT NULL,
    worst_concavity DOUBLE PRECISION NOT NULL,
    worst_concave_points DOUBLE PRECISION NOT NULL,
    worst_symmetry DOUBLE PRECISION NOT NULL,
    worst_fractal_dimension DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (patient_id)
);
