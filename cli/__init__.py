"""The ``craftnet`` command: thin commands over the packages below."""
