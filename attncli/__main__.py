"""`python -m attncli`: the same command as `attncli`."""

from attncli import main

main()
