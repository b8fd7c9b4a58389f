"""The service's routers, one module per concern: predict (the hot path), model (what is served
and how to change it), ops (health, readiness, metrics)."""
