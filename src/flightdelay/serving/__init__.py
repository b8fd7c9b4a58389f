"""flightdelay.serving."""
