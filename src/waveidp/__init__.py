"""Wave: plan, size, serve, secure and benchmark self-hosted AI inference.

from waveidp import catalog, sizing
result = sizing.estimate(sizing.SizingRequest.build("llama-3.1-8b", "q4_k_m", ["rtx-5070-ti"]))
print(result.verdict, result.performance.output_tokens_per_s)
"""

from waveidp.errors import ConfigError, InputError, NotFoundError, WaveError

__version__ = "0.1.0"
__all__ = ["ConfigError", "InputError", "NotFoundError", "WaveError", "__version__"]
