"""Where rlreg keeps what it makes: ``$RLREG_HOME`` (default ``~/.rlreg``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["rlreg_home", "made_datasets_root"]


def rlreg_home() -> Path:
    """Root folder for made datasets and caches (``$RLREG_HOME`` or ``~/.rlreg``)."""
    return Path(os.environ.get("RLREG_HOME", Path.home() / ".rlreg")).expanduser()


def made_datasets_root() -> Path:
    """The Minari datasets root holding the datasets rlreg makes (``$RLREG_HOME/minari``)."""
    return rlreg_home() / "minari"
