"""Intake of machine data: MQTT sensors, cameras, and the demo simulator."""
