"""The two ways to run the spec: native processes under supervisord, and docker compose."""
