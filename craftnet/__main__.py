"""Allow ``python -m craftnet``."""

from craftnet.cli.main import main

if __name__ == "__main__":
    main()
