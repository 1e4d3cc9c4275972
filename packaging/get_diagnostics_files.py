#!/usr/bin/python3
# get_diagnostics_files.py as the management server calls it, answered by vragent
# (vragent/cloudscripts.py): the incumbent's file names mapped to vragent's, plus its log and state.
import sys

from vragent.cloudscripts import main

sys.exit(main(["get_diagnostics_files.py", *sys.argv[1:]]))
