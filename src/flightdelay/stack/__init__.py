"""flightdelay.stack."""
