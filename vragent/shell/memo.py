"""What the agent remembers between pushes so that it can skip work safely.

Both memos are keyed by exactly what the skipped work depends on; when anything in the
key differs (another push, another state file, another vragent, a changed ruleset), the
memo does not fit and the agent does the work in full.
"""

from __future__ import annotations

from vragent.shell import files
from vragent.shell.netlink import RulesetGeneration
from vragent.paths import Paths


def digest(text: str | None) -> str:
    import hashlib

    return hashlib.sha256((text or "").encode()).hexdigest()


def _code_identity() -> str:
    """This vragent: its version, and the newest change to its code (an edited renderer
    renders other tables for the same state, released or not). ~60 stat calls, <1 ms."""
    import os

    from vragent import __file__ as package_init, __version__

    newest, count = 0, 0
    pending = [os.path.dirname(package_init)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                    pending.append(entry.path)
                elif entry.name.endswith(".py"):
                    newest, count = max(newest, entry.stat().st_mtime_ns), count + 1
    return f"{__version__}:{newest}:{count}"


class MergeMemo:
    """Remembers that pushing P onto state S gave state S again.

    Merging is a pure, idempotent function (each CloudStack type sets or deletes keys), so
    when the state on disk is exactly what the last apply of the same push produced, a new
    merge would give it back unchanged: the agent skips parsing, merging and validating the
    push again (most of a no-op re-apply of a large push) and goes straight to drift checks.
    """

    def __init__(self, paths: Paths):
        self.path = paths.run_dir / "merge-memo"

    def fits(self, push: str | None, state_digest: str | None) -> bool:
        if push is None or state_digest is None:
            return False
        return files.read_text(self.path) == f"{push} {state_digest}\n"

    def remember(self, push: str | None, state_digest: str) -> None:
        if push is not None:
            files.atomic_write(self.path, f"{push} {state_digest}\n", 0o600)


class TablesMemo:
    """Remembers the tables as verified, and the ruleset generation they were verified at.

    The rendered tables depend on the state alone (and on this vragent's renderer), and
    nf_tables moves the generation on every committed change by anyone. So while the
    generation, the state and the version match, the tables need neither rendering nor
    reading back: they are as verified. While only the generation matches, the remembered
    tables are what is running, and a push is planned against them without reading 7,000
    rules back. The kernel's generation restarts with each namespace, hence the namespace
    cookie and boot id in the key.

    The file: the key on its first line, then the tables (marshal: builtin types only,
    read in milliseconds) for the planner.
    """

    def __init__(self, paths: Paths):
        self.path = paths.run_dir / "tables-verified"

    @staticmethod
    def _generation_key(generation: RulesetGeneration) -> bytes:
        """The start of the key: what running() needs to match."""
        return f"{generation.boot} {generation.netns} {generation.generation} ".encode()

    @classmethod
    def _key(cls, generation: RulesetGeneration, state_digest: str) -> bytes:
        return cls._generation_key(generation) + f"{_code_identity()} {state_digest}\n".encode()

    def _read_key(self) -> bytes | None:
        try:
            with open(self.path, "rb") as handle:
                return handle.readline()
        except OSError:
            return None

    def fits(self, generation: RulesetGeneration | None, state_digest: str) -> bool:
        """The running tables are exactly what the state with this digest renders to."""
        return generation is not None and self._read_key() == self._key(generation, state_digest)

    def running(self, generation: RulesetGeneration | None) -> dict | None:
        """The running tables' owned chains, jumps and policies, if the generation says
        nobody changed them since they were verified (whatever state they were for)."""
        import marshal

        if generation is None:
            return None
        try:
            with open(self.path, "rb") as handle:
                if not handle.readline().startswith(self._generation_key(generation)):
                    return None
                return marshal.loads(handle.read())
        except (OSError, EOFError, ValueError, TypeError):
            return None

    def remember(self, generation: RulesetGeneration | None, state_digest: str, tables: dict) -> None:
        """`tables`: name -> TableSpec, as just verified at `generation`."""
        import marshal

        if generation is None:
            self.forget()
            return
        payload = {name: (spec.policies, spec.jumps, spec.chains) for name, spec in tables.items()}
        files.atomic_write(self.path, self._key(generation, state_digest) + marshal.dumps(payload), 0o600)

    def forget(self) -> None:
        files.remove(self.path)


class RenderMemo:
    """The last output of each template (templating.render with memo=True), one file each
    under the run directory, so a push that leaves a daemon's settings alone costs no Jinja2."""

    def __init__(self, paths: Paths):
        self._dir = paths.run_dir / "render-cache"

    def get(self, name: str) -> tuple[str, str] | None:
        try:
            key, _, output = (self._dir / f"{name}.cache").read_text().partition("\n")
        except OSError:
            return None
        return key, output

    def put(self, name: str, key: str, output: str) -> None:
        try:
            files.atomic_write(self._dir / f"{name}.cache", f"{key}\n{output}", 0o600)
        except OSError:
            pass  # a memo that cannot be written only costs time
