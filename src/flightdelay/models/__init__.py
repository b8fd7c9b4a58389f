"""Training, registry and scoring of the logistic-regression variants."""
