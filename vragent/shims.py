"""Drop-in entry points with the incumbent's calling convention, but truthful exit codes.

  update_config.py NAME [false]   NAME is a file the management server put in /var/cache/cloud
  vr_cfg.sh -c FILE               FILE is an aggregated VR-<uuid>.cfg batch
  configure.py NAME               run by the management server after some pushes: a no-op

Processed files are archived gzipped in /var/cache/cloud/processed/ (or deleted with
`false`). A push that failed is archived as NAME.failed.gz, so a repeated call for an
already-processed NAME succeeds only when that NAME really was applied.
"""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

from vragent import engine
from vragent.shell import guard, log
from vragent.errors import InvalidInput
from vragent.paths import Paths
from vragent.pipeline.intake import MAX_FILE_BYTES, decode, load_push

CMDLINE_FILE = "cmd_line.json"


# The archive is a record, not a store: a VR pushed to for months would otherwise fill its
# small disk with one file per push (CloudStack's #3757: 110,343 files). Newest first, it
# keeps this many pushes and this many bytes.
ARCHIVE_KEEP_FILES = 1000
ARCHIVE_KEEP_BYTES = 64 << 20


def _prune_archive(directory: Path) -> None:
    entries = []
    with os.scandir(directory) as found:
        for entry in found:
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                entries.append((info.st_mtime_ns, entry.name, info.st_size))
    entries.sort(reverse=True)
    total = 0
    for index, (_, name, size) in enumerate(entries):
        total += size
        if index >= ARCHIVE_KEEP_FILES or total > ARCHIVE_KEEP_BYTES:
            try:
                os.unlink(directory / name)
            except FileNotFoundError:
                pass


def _archive(paths: Paths, source: Path, succeeded: bool, keep: bool = True) -> None:
    """Keep the push for the record (and for "already processed"), without its secrets:
    VM passwords and TLS private keys have no business lying around in an archive."""
    if keep:
        from vragent.redact import secrets_hidden

        paths.processed.mkdir(parents=True, exist_ok=True)
        target = paths.processed / (source.name + (".gz" if succeeded else ".failed.gz"))
        text = source.read_text(encoding="utf-8", errors="surrogateescape")
        with gzip.open(target, "wb") as packed:
            packed.write(secrets_hidden(text).encode("utf-8", errors="surrogateescape"))
        os.chmod(target, 0o600)
        _prune_archive(paths.processed)
    source.unlink()


def _apply_files(paths: Paths, sources: list[Path]) -> engine.Result:
    refusal = guard.refusal(paths)
    if refusal is not None:  # nothing is read, applied or archived: the push stays where it is
        log.get().error("push %s: %s", ",".join(s.name for s in sources), refusal)
        return engine.Result(status="invalid", push=[s.name for s in sources],
                             errors=[{"path": "", "message": refusal}])
    documents = []
    try:
        for source in sources:
            with open(source, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
            documents.extend(load_push(source.name, decode(source.name, data)))
    except InvalidInput as exc:
        return engine.Result(status="invalid", push=[s.name for s in sources],
                             errors=[{"path": e.path, "message": e.message} for e in exc.errors])
    return engine.apply(paths, documents, names=[s.name for s in sources])


def _refused(result: engine.Result) -> bool:
    return result.status == "invalid" and any(e["message"].startswith(guard.REFUSING) for e in result.errors)


def _report(result: engine.Result) -> int:
    for error in result.errors:
        print(f"{error['path']}: {error['message']}" if error["path"] else error["message"], file=sys.stderr)
    return result.exit_code


def update_config(argv: list[str], paths: Paths | None = None) -> int:
    paths = paths or Paths.from_root()
    log.setup(paths.log)
    if len(argv) not in (1, 2) or (len(argv) == 2 and argv[1] not in ("true", "false")):
        print("usage: update_config.py <file in /var/cache/cloud> [false]", file=sys.stderr)
        return 2
    name = os.path.basename(argv[0])
    keep = not (len(argv) == 2 and argv[1] == "false")
    if name in ("", ".", "..") or "\0" in name or len(name.encode("utf-8", "surrogateescape")) > 255:
        print(f"update_config.py: {argv[0]!r} names no file in {paths.cache}", file=sys.stderr)
        return 2
    source = paths.cache / name
    if source.exists() and not source.is_file():
        print(f"update_config.py: {source} is not a file", file=sys.stderr)
        return 2
    if not source.exists():
        if (paths.processed / f"{name}.gz").exists():
            return 0  # already applied: the management server retried
        print(f"{source} does not exist", file=sys.stderr)
        return 1
    sources = [source]
    pending_cmdline = paths.cache / CMDLINE_FILE
    if name != CMDLINE_FILE and pending_cmdline.exists():
        # The incumbent merges a waiting cmd_line.json first, "or the control interfaces will get deleted".
        sources.insert(0, pending_cmdline)
    result = _apply_files(paths, sources)
    if not _refused(result):
        for path in sources:
            _archive(paths, path, result.exit_code == 0, keep)
    return _report(result)


def vr_cfg(argv: list[str], paths: Paths | None = None) -> int:
    paths = paths or Paths.from_root()
    log.setup(paths.log)
    if len(argv) != 2 or argv[0] != "-c":
        print("usage: vr_cfg.sh -c <VR-uuid.cfg>", file=sys.stderr)
        return 2
    source = Path(argv[1])
    if source.exists() and not source.is_file():
        print(f"vr_cfg.sh: {source} is not a file", file=sys.stderr)
        return 2
    if not source.exists():
        print(f"{source} does not exist", file=sys.stderr)
        return 1
    # The whole batch is one transaction: no partial application, no conntrack flush.
    result = _apply_files(paths, [source])
    if not _refused(result):
        _archive(paths, source, result.exit_code == 0)
    return _report(result)


def configure(argv: list[str], paths: Paths | None = None) -> int:
    """`configure.py <type>.json`: the management server's "converge now" after a push
    (SetMonitorServiceConfigItem adds it to the health-check refresh). vragent converged the
    whole router when update_config.py applied the push, so there is nothing to do; a batch's
    configure.py lines are skipped the same way (wire.intake)."""
    paths = paths or Paths.from_root()
    log.setup(paths.log)
    if len(argv) != 1:
        print("usage: configure.py <type>.json", file=sys.stderr)
        return 2
    log.get().info("configure.py %s: nothing to do, the push was converged when it was applied",
                   os.path.basename(argv[0]))
    return 0


def main() -> int:
    program = os.path.basename(sys.argv[0])
    if program.startswith("vr_cfg"):
        return vr_cfg(sys.argv[1:])
    if program.startswith("configure"):
        return configure(sys.argv[1:])
    return update_config(sys.argv[1:])
