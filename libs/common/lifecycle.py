"""Process lifecycle: one stop event, set by SIGTERM or SIGINT, awaited by every long task."""

import asyncio
import signal


def stop_on_signals() -> asyncio.Event:
    """An event set on the first SIGTERM/SIGINT; call from inside the running event loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
