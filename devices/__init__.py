"""Devices: the type catalogue, payload profiles and the registry."""
