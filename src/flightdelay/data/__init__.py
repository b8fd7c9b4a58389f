"""flightdelay.data."""
