"""What every layer uses: the one error shape (errors.py), exact JSON (jsonio.py), time and ids
(clock.py) and the per-request log line (telemetry.py). Imports nothing else of ours."""
