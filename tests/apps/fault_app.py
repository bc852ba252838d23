"""The server of tests/test_faults.py: bench/hostile_app.py itself (the app of
`python -m bench.hostile`), so that the tests and the full-size probes run one implementation.

python fault_app.py 0      (a free port, named in its "listening on" log line)

Its env (HOSTILE_PING, HOSTILE_SPACING, HOSTILE_LOOP_HZ, HOSTILE_SHUTDOWN, HOSTILE_CLOSES_FILE;
BLAZE_BROKER_URL for a broker) and routes (/feed, /control, /stats) are described there.
"""

import runpy
from pathlib import Path

runpy.run_path(
    str(Path(__file__).resolve().parents[2] / "bench" / "hostile_app.py"), run_name="__main__"
)
