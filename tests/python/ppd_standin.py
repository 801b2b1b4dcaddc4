"""A STAND-IN for power-profiles-daemon (the real daemon cannot be made to
report heat here: its PerformanceDegraded comes from CPU drivers). It owns
`net.hadess.PowerProfiles` on the bus in DBUS_SYSTEM_BUS_ADDRESS and
serves the `PerformanceDegraded` property, read from the file named by its
first argument at every Get, so a test can change it. Built with
dbus-fast (PyPI). Prints "ready" once it owns the name."""
import asyncio
import sys

from dbus_fast import BusType
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property

STATE = sys.argv[1]


class PowerProfiles(ServiceInterface):
    def __init__(self):
        super().__init__("net.hadess.PowerProfiles")

    @dbus_property(access=PropertyAccess.READ)
    def PerformanceDegraded(self) -> "s":
        with open(STATE) as f:
            return f.read().strip()

    @dbus_property(access=PropertyAccess.READ)
    def ActiveProfile(self) -> "s":
        return "balanced"


async def main():
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    bus.export("/net/hadess/PowerProfiles", PowerProfiles())
    await bus.request_name("net.hadess.PowerProfiles")
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()


asyncio.run(main())
