"""Command-line tools, installed as console entry points (see ``setup.cfg``)."""
