from vragent.cli import run

run()
