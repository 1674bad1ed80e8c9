from l4sim.cli import main

main()
