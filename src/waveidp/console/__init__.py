"""The Wave Console: the fleet, the router's decisions, keys, usage, audit, sizing, benchmarks and a
playground in the browser, served by the gateway itself at `/console` (docs/console.md).

    options = console_options(cfg, admin_key=..., bootstrap_key=...)
    setup.mounts.append(console_mount(options))         # gateway.compose mounts it, and closes it
"""

from waveidp.console.app import Console
from waveidp.console.options import ConsoleOptions, check_console_bind, console_options
from waveidp.console.site import console_mount, mount_console

__all__ = [
    "Console",
    "ConsoleOptions",
    "check_console_bind",
    "console_mount",
    "console_options",
    "mount_console",
]
