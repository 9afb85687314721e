"""The errors a user can see, in one place. Each names the input, option or model it is about.

Jobs print an :class:`AudioRoleError` as one line (``error: ...``) and exit with code 2 when it
stops the job before work starts; inside a pass, item-level ones are recorded in the errors
table and the job goes on.
"""
from __future__ import annotations

import importlib
from types import ModuleType


class AudioRoleError(Exception):
    """Base of the errors this project raises on purpose (the message is for the user)."""


class InputError(AudioRoleError, ValueError):
    """An input location is wrong: missing, empty, not laid out as expected."""


class ConfigError(AudioRoleError, ValueError):
    """A setting is out of range or does not fit the data (an unknown target speaker, say)."""


class DecodeError(AudioRoleError, RuntimeError):
    """A file could not be read as audio; the message names the file and the reason."""

    def __init__(self, uri: str, reason: str):
        super().__init__(f"{uri}: {reason}")
        self.uri, self.reason = uri, reason


class MissingModelError(AudioRoleError, RuntimeError):
    """Model weights are not where they were said to be; nothing is ever downloaded."""


class MissingDependencyError(MissingModelError, ImportError):
    """An optional package is not installed; the message gives the pip command."""


class StorageError(AudioRoleError, OSError):
    """Object storage or a filesystem failed (unreachable, timed out, not writable)."""


def require(module: str, pip: str, purpose: str = "") -> ModuleType:
    """Import an optional dependency, or fail with the pip command that installs it.

    ``pip`` is what to install (``"colossalai==0.5.0 --no-deps"``, ``"audiorole-ray[train]"``);
    ``purpose`` says what needs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(f"'{module}' is needed{why} but cannot be imported ({exc}): pip install {pip}") from exc
