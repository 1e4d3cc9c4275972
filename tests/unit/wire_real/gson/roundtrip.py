"""Runs CloudStack's own serializer over the fixtures: its model classes
(core/.../virtualnetwork/model/, compiled from CloudStack's source with javac) read each
fixture and Gson writes it again with AbstractConfigItemFacade's settings (RoundTrip.java,
vragent's driver). Nothing of CloudStack is kept in this tree: the source is read from
VRAGENT_CLOUDSTACK_SOURCE (a checkout, or a bare git directory whose HEAD is used)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

GSON_JAR = Path("/usr/share/java/gson.jar")  # Debian's libgoogle-gson-java
MODEL_DIR = "core/src/main/java/com/cloud/agent/resource/virtualnetwork/model"
# BgpPeers needs classes outside the model package; no fixture is of its type.
SKIPPED = ("BgpPeers.java",)
DRIVER = Path(__file__).with_name("RoundTrip.java")


def source() -> Path | None:
    value = os.environ.get("VRAGENT_CLOUDSTACK_SOURCE")
    return Path(value) if value else None


def unavailable() -> str | None:
    for tool in ("javac", "java"):
        if shutil.which(tool) is None:
            return f"no {tool} (a JDK, e.g. Debian's openjdk-17-jdk-headless)"
    if not GSON_JAR.exists():
        return f"no {GSON_JAR} (Debian's libgoogle-gson-java)"
    root = source()
    if root is None:
        return "VRAGENT_CLOUDSTACK_SOURCE names no CloudStack source (a checkout or a bare git directory)"
    if not root.exists():
        return f"VRAGENT_CLOUDSTACK_SOURCE={root} does not exist"
    return None


def _model_sources(root: Path, into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    if (root / MODEL_DIR).is_dir():
        names = sorted(p.name for p in (root / MODEL_DIR).glob("*.java"))
        read = lambda name: (root / MODEL_DIR / name).read_text()  # noqa: E731
    else:  # a bare git directory
        git = ["git", f"--git-dir={root}"]
        listing = subprocess.run([*git, "ls-tree", "--name-only", f"HEAD:{MODEL_DIR}"],
                                 capture_output=True, text=True, check=True).stdout
        names = sorted(n for n in listing.split() if n.endswith(".java"))
        read = lambda name: subprocess.run([*git, "show", f"HEAD:{MODEL_DIR}/{name}"],  # noqa: E731
                                           capture_output=True, text=True, check=True).stdout
    written = []
    for name in names:
        if name in SKIPPED:
            continue
        path = into / name
        path.write_text(read(name))
        written.append(path)
    return written


def reserialize(files: list[Path], workdir: Path) -> dict[Path, str]:
    """Each file's text as Gson writes it back; a file the model cannot read maps to '!<error>'."""
    classes = workdir / "classes"
    sources = _model_sources(source(), workdir / "src")
    classpath = f"{GSON_JAR}:{classes}"
    subprocess.run(["javac", "-nowarn", "-cp", str(GSON_JAR), "-d", str(classes), *map(str, sources)],
                   capture_output=True, text=True, check=True)
    subprocess.run(["javac", "-cp", classpath, "-d", str(classes), str(DRIVER)],
                   capture_output=True, text=True, check=True)
    done = subprocess.run(["java", "-cp", classpath, "RoundTrip", *map(str, files)],
                          capture_output=True, text=True, check=True, timeout=120)
    written = {}
    for line in done.stdout.splitlines():
        name, _, text = line.partition("\t")
        written[Path(name)] = text
    return written
