"""The Wave Console: the fleet, the router's decisions, keys, usage, audit, sizing, benchmarks and a
playground in the browser, served by the gateway itself at `/console` (docs/console.md).

    options = options_from_cli(host=..., admin_key=..., bootstrap_key=...)
    console = mount_console(app, security, options)     # after create_app and security.mount
    ...serve...; console.close()
"""

from waveidp.console.app import Console, mount_console
from waveidp.console.options import ConsoleOptions, check_console_bind, options_from_cli

__all__ = ["Console", "ConsoleOptions", "check_console_bind", "mount_console", "options_from_cli"]
