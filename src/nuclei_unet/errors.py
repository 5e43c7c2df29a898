"""Error types whose message is shown to the user as one line, without a traceback."""


class NucleiError(Exception):
    """Base class: a problem with the user's input (data or params), not a bug."""


class ParamsError(NucleiError):
    """A params.yaml value is missing, unknown, of the wrong type or out of range."""


class DataError(NucleiError):
    """An input file or folder is missing, unreadable or not in the expected layout."""


class TooLargeError(DataError):
    """An image would need more memory to segment than the machine has available."""
