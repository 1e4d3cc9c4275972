"""The step log survives logrotate moving it away (the agent reopens the file)."""

from __future__ import annotations

import logging

from vragent.shell import log


def test_log_is_reopened_after_logrotate_moves_it(tmp_path):
    path = tmp_path / "var/log/cloud-scripts.log"
    logger = log.setup(path)
    logger.info("before rotation")
    path.rename(path.with_name("cloud-scripts.log.1"))
    logger.info("after rotation")
    for handler in logger.handlers:
        handler.flush()
    assert "before rotation" in path.with_name("cloud-scripts.log.1").read_text()
    assert "after rotation" in path.read_text()
    assert "before rotation" not in path.read_text()
    logging.getLogger(log.LOGGER_NAME).handlers.clear()
