"""The ipc package's exceptions: one root, each mixed with the builtin a caller would expect."""


class IpcError(Exception):
    """Root of every error raised by the shared-memory rings."""


class RingMismatch(IpcError, ValueError):
    """A ring was attached with a record layout or format version other than the one it holds."""


class RingTimeout(IpcError, TimeoutError):
    """A bounded wait on a ring (the writer waiting for space) ran out of time."""


class RingExists(IpcError, FileExistsError):
    """Ring.create found a segment of that name already there."""


class RingMissing(IpcError, FileNotFoundError):
    """Ring.attach found no segment of that name."""
