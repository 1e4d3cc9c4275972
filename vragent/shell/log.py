"""The step log: /var/log/cloud-scripts.log (reopened after logrotate moves it), and journald."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOGGER_NAME = "vragent"


def setup(log_file: Path, verbose: bool = False) -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    # A log that cannot be written (a full disk) is dropped silently, never a traceback on
    # stderr in the middle of the agent's one-line answer.
    logging.raiseExceptions = False
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # WatchedFileHandler notices when logrotate renames the file and reopens it.
        handler: logging.Handler = logging.handlers.WatchedFileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s vragent[%(process)d]: %(message)s"))
        logger.addHandler(handler)
    except OSError:
        pass  # an unwritable log must not stop the router from being configured
    try:
        from systemd.journal import JournalHandler  # python3-systemd, optional
    except ImportError:
        pass
    else:
        journal = JournalHandler(SYSLOG_IDENTIFIER="vragent")
        journal.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(journal)
    if not logger.handlers:
        # Nowhere to log (not root, say): say nothing rather than have logging print the
        # records to stderr beside the one line the command prints.
        logger.addHandler(logging.NullHandler())
    return logger


def get() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
