from vragent.command import main

main()
