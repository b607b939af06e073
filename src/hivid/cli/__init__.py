"""`hivid`: the command line, one module per command group (the top layer; see pyproject's
``[tool.importlinter]``).

- ``app``: the ``hivid`` group and one command per pipeline stage (``ingest``, ``annotate``, ...);
- ``evaluate``: ``hivid evaluate model|captions|dense|narration|titles``;
- ``store``: ``hivid store relocate``;
- ``config_check``: ``hivid config check``;
- ``common``: progress bars, one-line errors and shared options.

The console script is ``hivid = "hivid.cli:main"``.
"""

from hivid.cli.app import main

__all__ = ["main"]
