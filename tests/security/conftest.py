from tests.drivers.fixtures import bwrap_driver, sandbox, start_sandbox

__all__ = ["bwrap_driver", "sandbox", "start_sandbox"]
