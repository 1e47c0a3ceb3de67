"""`wave emulate`: an OpenAI-compatible engine emulator whose timing follows a step-time model.

from waveidp.bench.emulator import EmulatorConfig, FixedTiming, create_app
app = create_app(EmulatorConfig(model="m", timing=FixedTiming(step_s=0.02, prefill_s=0.05)))
# aiohttp.web.run_app(app, host="127.0.0.1", port=8000) or an AppRunner in your own loop
"""

from waveidp.bench.emulator.scheduler import BatchScheduler, Sequence
from waveidp.bench.emulator.server import EmulatorConfig, create_app
from waveidp.bench.emulator.timing import FixedTiming, StepTiming

__all__ = ["BatchScheduler", "EmulatorConfig", "FixedTiming", "Sequence", "StepTiming", "create_app"]
