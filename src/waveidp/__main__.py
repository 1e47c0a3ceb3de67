from waveidp.cli import main

main()
