"""``python -m idemlint``: the same as the ``idemlint`` script."""

from idemlint.cli import main

if __name__ == "__main__":
    main()
