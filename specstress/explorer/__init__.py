"""The local results explorer behind ``specstress serve`` (see app.py)."""
