from l4sim.launch import main

main()
