"""The service's routes, one module per concern: predict (the hot path), model (what is served
and how to change it), ops (health, readiness, metrics), docs (offline Swagger UI and ReDoc)."""
