"""flightdelay.features."""
