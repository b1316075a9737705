"""The one error of the keypoint readers, in a module of its own so that :mod:`.layouts` and
:mod:`.core` can both raise it without importing each other."""

from __future__ import annotations

from trilab.errors import UserError


class KeypointInputError(UserError, ValueError):
    """A keypoint file or array cannot be used; the message names the file, key or joint."""
