"""pulumi-command's `local` and `remote` modules, imported once without their DeprecationWarning.

Importing `pulumi_command.remote` warns about the deprecated CopyFile resource, which this
project never uses. The package loads submodules lazily, so the warning fires on first
attribute access: load them here, inside the filter, and import them from this module.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from pulumi_command import local, remote

    _ = (local.Command, remote.Command)  # force the lazy imports now

__all__ = ["local", "remote"]
