"""``python -m s3tr`` is the ``s3tr`` command."""

from s3tr.cli import main

main()
