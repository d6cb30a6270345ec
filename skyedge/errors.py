"""The errors a user can act on: the CLI prints their message, not a traceback.

Two kinds, because a daemon treats them differently:

* :class:`SkyedgeError`: a mistake in a file, key or argument (configuration, model package, command line).
  At start-up it stops the command with its message.
* :class:`InputError`: one input (a frame file) that cannot be used. A running daemon reports it naming the
  file, counts it and carries on. Anything else raised while handling an input is a bug: logged with its
  traceback and counted, never reported as a bad input.
"""


class SkyedgeError(Exception):
    """An error whose message names the file, key or field at fault and says what to do."""


class InputError(SkyedgeError, ValueError):
    """One input that cannot be used (unreadable, wrong shape, no sky to classify); its message names the file."""
