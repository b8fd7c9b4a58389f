"""The small core every stage, the service and the stack build on."""
