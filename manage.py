#!/usr/bin/env python
"""Django's command-line utility for the humanmade demo site (`python manage.py demo`)."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Install the demo's dependencies first: "
            "pip install -e '.[django]' (inside your virtual environment)."
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
