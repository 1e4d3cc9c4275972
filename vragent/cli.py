"""Command line: argument parsing and exit codes only.

Exit codes: 0 applied or nothing to do; 1 the apply failed and was rolled back, or another
apply held the lock too long (nothing changed; retry), or the system refused an operation;
2 refused, nothing changed: invalid input, a missing or unreadable file, not root, or this
network namespace is not a router's (vragent.shell.guard); 3 `status`: the router drifted from
the committed state; 130 interrupted; 141 the output pipe closed (`... | head`).
An operator's mistake is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from vragent import __version__, engine
from vragent.shell import guard, log, runner
from vragent.pipeline import document as state_doc
from vragent.errors import ApplyFailed, InvalidInput
from vragent.paths import Paths
from vragent.pipeline.intake import MAX_FILE_BYTES, decode, load_push


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vragent", description="Configure a CloudStack virtual router atomically.")
    parser.add_argument("--root", help="relocate every path the agent uses under DIR (or set VRAGENT_ROOT)")
    parser.add_argument(guard.OPT_IN, dest="this_is_the_router", action="store_true",
                        help="change this network namespace's links, addresses, routes, sysctls and "
                             "tables even though no marker says it is a router's (see vragent.shell.guard)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"vragent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    apply = commands.add_parser("apply", help="apply CloudStack config files, a VR-*.cfg batch or a native document")
    apply.add_argument("files", nargs="+", metavar="FILE", help="push file(s); - reads standard input")
    apply.add_argument("--dry-run", action="store_true", help="print the plan as a diff and change nothing")
    apply.add_argument("--json", action="store_true", help="print one JSON result object")
    apply.add_argument("--full", action="store_true",
                       help="merge the push and read every table again even when the agent remembers "
                            "that nothing changed since it last verified them")
    apply.add_argument("--lock-timeout", type=float, default=engine.lock.DEFAULT_WAIT,
                       help="seconds to wait for a concurrent apply (default %(default)s)")

    commands.add_parser("show", help="print the persisted desired state (the native document)")
    restore = commands.add_parser("restore", help="re-apply the persisted state (at boot); nothing to do without one")
    restore.add_argument("--dry-run", action="store_true", help="print what restoring would repair; change nothing")
    status = commands.add_parser("status", help="version, last change, daemons, VRRP role and drift")
    status.add_argument("--json", action="store_true")
    status.add_argument("--checkrouter", action="store_true",
                        help="print only `Status: PRIMARY|BACKUP|FAULT` like CloudStack's checkrouter.sh")
    status.add_argument("--checks2svpn", nargs="+", metavar="PEER",
                        help="print `<peer>:<rc>:<info>&` per site-to-site peer like CloudStack's checkbatchs2svpn.sh")
    render = commands.add_parser("render", help="print the full rendered ruleset as iptables-restore input")
    render.add_argument("files", nargs="*", metavar="FILE", help="render the state after these pushes (no apply)")
    render.add_argument("-6", dest="ipv6", action="store_true",
                        help="the IPv6 tables, as ip6tables-restore input (empty for an IPv4-only router)")

    serve = commands.add_parser("serve", help="the resident agent: run the shims' pushes handed over on "
                                              "run/vragent/agent.sock, without an interpreter start each")
    serve.add_argument("--once", action="store_true", help="serve one push and exit")
    supervise = commands.add_parser("supervise", help="restart enabled daemons that died (where systemd does not)")
    supervise.add_argument("--interval", type=float, default=1.0, help="seconds between checks (default %(default)s)")
    supervise.add_argument("--once", action="store_true", help="check once and exit")

    # Redundant router pairs (keepalived VRRP).
    transition = commands.add_parser("transition", help="make this router PRIMARY, BACKUP or FAULT now "
                                                        "(keepalived normally decides; see `notify`)")
    transition.add_argument("role", choices=("primary", "backup", "fault"))
    transition.add_argument("--release-vips", action="store_true",
                            help="also remove the VIPs (keepalived is gone; systemd's ExecStopPost)")
    transition.add_argument("--if-keepalived-dead", action="store_true",
                            help="do nothing while keepalived runs (a unit's ExecStopPost on a restart race)")
    notify = commands.add_parser("notify", help="read keepalived's notify FIFO (its notify_fifo_script)")
    notify.add_argument("fifo")

    lab = commands.add_parser("lab", help="a router replica in network namespaces")
    lab_actions = lab.add_subparsers(dest="action", required=True)
    prefix = argparse.ArgumentParser(add_help=False)
    prefix.add_argument("--prefix", default="vrlab", help="namespace name prefix (default %(default)s)")
    lab_up = lab_actions.add_parser("up", parents=[prefix], help="build it and apply the sample network")
    lab_up.add_argument("--bare", action="store_true",
                        help="the router gets its NICs and nothing else (to replay pushes of your own)")
    lab_up.add_argument("--type", dest="router_type", default="router", choices=("router", "vpcrouter", "dhcpsrvr"),
                        help="the router's NIC layout: isolated (default), VPC with two tiers, or a shared "
                             "network's DHCP server; the sample network is the isolated one's (others: --bare)")
    lab_actions.add_parser("check", parents=[prefix], help="prove the sample network with real traffic")
    lab_push = lab_actions.add_parser("push", parents=[prefix],
                                      help="hand files to the lab router as the management server does "
                                           "(update_config.py NAME; vr_cfg.sh -c for VR-*.cfg batches)")
    lab_push.add_argument("files", nargs="+", metavar="FILE")
    lab_exec = lab_actions.add_parser("exec", parents=[prefix], help="run a command on a lab machine")
    lab_exec.add_argument("role", help="vr, vm1, vm2, up (the upstream host), ctl (the control host)")
    lab_exec.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND")
    lab_actions.add_parser("down", parents=[prefix], help="remove every namespace and process")
    return parser


def read_documents(names: list[str]):
    documents, labels = [], []
    for name in names:
        if name == "-":
            data, label = sys.stdin.buffer.read(MAX_FILE_BYTES + 1), "stdin"
        else:
            with open(name, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
            label = os.path.basename(name)
        documents.extend(load_push(label, decode(label, data)))
        labels.append(label)
    return documents, labels


def _print_errors(errors: list[dict]) -> None:
    for error in errors:
        print(f"error: {error['path']}: {error['message']}" if error["path"] else f"error: {error['message']}",
              file=sys.stderr)


def cmd_apply(args, paths: Paths) -> int:
    refusal = None if args.this_is_the_router else guard.refusal(paths)
    try:
        documents, labels = read_documents(args.files)
    except InvalidInput as exc:
        result = engine.Result(status="invalid", push=args.files,
                               errors=[{"path": e.path, "message": e.message} for e in exc.errors])
        log.get().error("push %s: invalid: %s", ",".join(args.files), exc)
    except OSError as exc:
        result = engine.Result(status="invalid", push=args.files, errors=[{"path": "", "message": _os_error(exc)}])
    else:
        if refusal is not None and not args.dry_run:
            result = engine.Result(status="invalid", push=labels, errors=[{"path": "", "message": refusal}])
            log.get().error("push %s: %s", ",".join(labels), refusal)
        else:
            result = engine.apply(paths, documents, dry_run=args.dry_run, lock_wait=args.lock_timeout, names=labels,
                                  full=args.full)
            if refusal is not None:
                result.notes.append(f"a dry run only: {refusal}")
    if args.json:
        print(json.dumps(result.as_json(), indent=None))
    else:
        if args.dry_run and result.status == "dry-run":
            sys.stdout.write(result.diff or "nothing to do: the router already matches\n")
        elif result.status in ("applied", "unchanged"):
            print(f"{result.status}: {sum(1 for s in result.steps if s['status'] == 'ok')} step(s) "
                  f"in {result.duration_ms:.0f} ms")
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        _print_errors(result.errors)
    return result.exit_code


def cmd_show(paths: Paths) -> int:
    try:
        sys.stdout.write(state_doc.dumps(engine.load_state(paths), pretty=True))
    except ApplyFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args, paths: Paths) -> int:
    from vragent.ops import status

    if args.checks2svpn:
        from vragent.subsystems.vpn import service as strongswan

        sys.stdout.write(strongswan.s2s_status(paths, args.checks2svpn))  # no newline, as the incumbent's echo -n
        return 0
    if args.checkrouter:
        from vragent.ops import failover

        try:
            print(f"Status: {failover.status(paths)['status']}")
        except ApplyFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        report = status.collect(paths)
    except ApplyFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(report) + "\n" if args.json else status.format_text(report))
    return EXIT_DRIFT if report["drift"] else 0


def cmd_restore(paths: Paths, link_wait: float = 30.0, dry_run: bool = False) -> int:
    """Boot: make the router what the persisted state says (rules, addresses, daemons).

    Without a readable state the router stays as the boot left it (closed: default DROP)
    and the reason is printed; the NICs the state names may still be appearing, so wait
    for them a bounded time first.
    """
    import time

    from vragent.shell import files, netlink
    from vragent.subsystems.network.render import render as render_links

    text = files.read_text(paths.state)
    if text is None:
        print(f"no persisted state at {paths.state}: nothing to restore; the router stays closed")
        return 0
    try:
        wanted = set(render_links(engine.load_state(paths)).addresses)
    except ApplyFailed as exc:
        print(f"error: {exc}; the router stays closed", file=sys.stderr)
        return 1
    if dry_run:
        result = engine.apply(paths, load_push(paths.state.name, text), dry_run=True, names=["restore"])
        _print_errors(result.errors)
        if result.status == "dry-run":
            sys.stdout.write(result.diff or "nothing to restore: the router matches the persisted state\n")
        return result.exit_code
    deadline = time.monotonic() + link_wait
    while (missing := wanted - set(netlink.links())) and time.monotonic() < deadline:
        time.sleep(0.2)
    if missing:
        print(f"warning: {', '.join(sorted(missing))} did not appear within {link_wait:g} s", file=sys.stderr)
    result = engine.apply(paths, load_push(paths.state.name, text), names=["restore"])
    _print_errors(result.errors)
    print(f"restore: {result.status} ({len(result.steps)} steps, {result.duration_ms:.0f} ms)")
    return result.exit_code


def cmd_render(args, paths: Paths) -> int:
    from vragent.tables import IP6_TABLES
    from vragent.pipeline.netfilter import render_restore
    from vragent.pipeline.intake import merge_documents

    state = engine.load_state(paths)
    if args.files:
        try:
            documents, _ = read_documents(args.files)
            state = merge_documents(state, documents)
        except InvalidInput as exc:
            _print_errors([{"path": e.path, "message": e.message} for e in exc.errors])
            return 2
    tables = engine.render(state, paths).tables
    if args.ipv6:
        keys = [key for key in IP6_TABLES if key in tables]
        sys.stdout.write(render_restore(tables, keys) if keys else "")
    else:
        sys.stdout.write(render_restore(tables))
    return 0


def cmd_redundancy(args, paths: Paths) -> int:
    from vragent.subsystems.vrrp import model as redundancy
    from vragent.ops import failover

    if args.command == "notify":
        return failover.notify_loop(paths, args.fifo)
    try:
        result = failover.transition(paths, redundancy.Role(args.role.upper()), reason="vragent transition",
                                       release_vips=args.release_vips,
                                       only_if_keepalived_dead=args.if_keepalived_dead)
    except ApplyFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result is None:
        print("not a redundant router: nothing to do")
        return 0
    _print_errors(result.errors)
    print(f"transition {args.role}: {result.status} ({len(result.steps)} steps, {result.duration_ms:.0f} ms)")
    return result.exit_code


def exit_now(code: int) -> None:
    """Leave without tearing the interpreter down object by object.

    After a push the agent holds the whole router state (thousands of objects); the
    teardown only costs time (~10 ms of every push). Every file the agent wrote is
    already fsynced; flush what is buffered, then go.
    """
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            code = code or EXIT_PIPE  # the reader went away before the last of the output
        except OSError:
            pass
    os._exit(code)


def run() -> None:
    """The `vragent` command (console script and `python -m vragent`)."""
    exit_now(main())


LONG_RUNNING = ("supervise", "notify", "serve")


EXIT_DRIFT, EXIT_INTERRUPTED, EXIT_PIPE = 3, 130, 141
# Commands that change this namespace's links, addresses, routes, sysctls, tables or daemons.
ACTING = ("apply", "restore", "transition", "notify", "supervise")
# Commands that need root whatever they do (the tables are read with iptables-save).
NEED_ROOT = (*ACTING, "status", "lab")


class Refused(Exception):
    """An operator's mistake caught before anything changed (exit 2, one line)."""


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    hint = "; run vragent as root" if isinstance(exc, PermissionError) and os.geteuid() != 0 else ""
    return f"{where}{exc.strerror or exc}{hint}"


def _preflight(args, paths: Paths) -> None:
    if args.command in NEED_ROOT and os.geteuid() != 0 and not getattr(args, "checkrouter", False):
        raise Refused(f"`vragent {args.command}` must run as root (it reads and changes netfilter tables, "
                      f"addresses and daemons); this is uid {os.geteuid()}")
    dry_run = getattr(args, "dry_run", False)
    if args.command in ACTING and args.command != "apply" and not dry_run and not args.this_is_the_router:
        refusal = guard.refusal(paths)
        if refusal is not None:
            raise Refused(refusal)


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except BrokenPipeError:  # `vragent --help | head -1`
        _stdout_to_devnull()
        return EXIT_PIPE
    paths = Paths.from_root(args.root)
    log.setup(paths.log, args.verbose)
    try:
        _preflight(args, paths)
        return _dispatch(args, paths)
    except Refused as exc:
        log.get().error("vragent %s refused: %s", args.command, exc)
        print(f"vragent: {exc}", file=sys.stderr)
        return engine.EXIT_INVALID
    except BrokenPipeError:
        # Whoever read our output stopped (`vragent lab up | head`): not an error of ours.
        _stdout_to_devnull()
        return EXIT_PIPE
    except KeyboardInterrupt:
        print("vragent: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ApplyFailed as exc:
        print(f"vragent: {exc}", file=sys.stderr)
        return engine.EXIT_FAILED
    except OSError as exc:
        print(f"vragent: {_os_error(exc)}", file=sys.stderr)
        return engine.EXIT_INVALID if isinstance(exc, (PermissionError, FileNotFoundError)) else engine.EXIT_FAILED
    except runner.CommandFailed as exc:
        print(f"vragent: {str(exc).splitlines()[0] if str(exc) else exc!r}", file=sys.stderr)
        return engine.EXIT_FAILED


def _stdout_to_devnull() -> None:
    """Further writes (and the flush at exit) to a closed pipe go nowhere instead of raising."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _dispatch(args, paths: Paths) -> int:
    if args.command == "apply":
        return cmd_apply(args, paths)
    if args.command == "show":
        return cmd_show(paths)
    if args.command == "render":
        return cmd_render(args, paths)
    if args.command == "restore":
        return cmd_restore(paths, dry_run=args.dry_run)
    if args.command == "status":
        return cmd_status(args, paths)
    if args.command in LONG_RUNNING:
        import gc

        gc.enable()  # vragent.command turned it off for one-shot runs
    if args.command == "serve":
        from vragent.ops import resident

        return resident.serve(paths, args.once)
    if args.command == "supervise":
        from vragent.ops import supervise

        return supervise.run(paths, args.interval, args.once)
    if args.command in ("transition", "notify"):
        return cmd_redundancy(args, paths)
    if args.command == "lab":
        from vragent.lab import cli as lab_cli

        return lab_cli.main(args)
    return 2
