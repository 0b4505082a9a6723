"""``python -m abl`` is the ``abl`` command."""

from abl.cli import main

main(prog_name="abl")
