"""The `vragent` command's entry point (console script and `python -m vragent`)."""

import gc


def main() -> None:
    # Almost every run is one short process (a push, a status query) that frees everything at
    # exit: the cyclic collector would only walk the thousands of rule objects it holds, again
    # and again (~10 ms of imports alone, more on a big push). Long-running commands turn it
    # back on (cli.main).
    gc.disable()
    from vragent.cli import run

    run()
