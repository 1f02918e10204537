from attncli import main

main()
