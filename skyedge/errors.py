"""The base of errors a user can act on: the CLI prints their message, not a traceback."""


class SkyedgeError(Exception):
    """An error whose message names the file, key or field at fault and says what to do."""
