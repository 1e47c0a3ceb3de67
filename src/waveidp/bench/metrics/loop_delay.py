"""Loop delay: how long a callback waits in the client's event-loop ready queue (sampled by the
runner every 10 ms); shows a saturated client even in closed loop, where client lag stays small."""

from __future__ import annotations

from waveidp.bench.metrics.metric import Metric

LOOP_DELAY = Metric("loop_delay_ms", "ms", "loop delay", "client event-loop delay")
