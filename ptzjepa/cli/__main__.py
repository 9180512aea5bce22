"""`python -m ptzjepa.cli`: the same command line as the `ptzjepa` script."""

from ptzjepa.cli.app import main

if __name__ == "__main__":
    main()
