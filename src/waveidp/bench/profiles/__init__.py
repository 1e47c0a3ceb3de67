"""Load shapes: closed-loop concurrency and open-loop Poisson rate. They decide *when* a request is
scheduled and nothing else; `send` does the protocol and the records hold the times."""

from waveidp.bench.profiles.concurrency import run_concurrency
from waveidp.bench.profiles.load_point import LoadPoint, Send, parse_loads
from waveidp.bench.profiles.poisson import run_poisson

__all__ = ["LoadPoint", "Send", "parse_loads", "run_concurrency", "run_poisson"]
