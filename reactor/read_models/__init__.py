"""Example read models shipped with the reactor."""
