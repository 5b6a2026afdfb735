"""The one way the test suites wait: for a condition, never for a time. Shared by tests/agent,
tests/integration and tests/clients (each puts this directory on sys.path)."""
import time


def wait_until(predicate, timeout=60, interval=0.1, what=None):
    """Polls `predicate` until it returns something truthy, which is returned. When `timeout`
    passes: with `what`, raises AssertionError naming it; without, returns the last value (so
    `assert wait_until(...)` fails with it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    value = predicate()
    if not value and what is not None:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    return value


def eventually(action, timeout=30, interval=0.3, exceptions=(Exception,)):
    """Runs `action` until it does not raise one of `exceptions`; returns its result, or raises
    its last exception once `timeout` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except exceptions:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)
