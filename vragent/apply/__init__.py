"""Committing a plan: steps that touch the OS, each with its own rollback."""
