"""Rules, the alarm lifecycle and the worker that turns input streams into alarms and orders."""
