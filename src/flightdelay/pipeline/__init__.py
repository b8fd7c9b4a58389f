"""One module per dvc.yaml stage, named exactly as the stage."""
