"""flightdelay.visualization."""
