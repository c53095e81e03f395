"""``manage.py rtbridge_firebase_rules``: print or write the database rules rtbridge needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...backends.firebase import database_rules
from ...conf import get_setting


class Command(BaseCommand):
    help = (
        "Print the Firebase Realtime Database rules (database.rules.json) that enforce "
        "rtbridge's channel grants: public channels readable by anyone, private-/presence- "
        "channels only with Django's custom token, presence entries writable by their member "
        "only. Deploy them with: firebase deploy --only database."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output", "-o", metavar="FILE", help="Write the rules to FILE instead of printing."
        )
        parser.add_argument(
            "--root",
            help="The database path rtbridge writes under (default: RTBRIDGE_OPTIONS['root'], "
            "else 'rtbridge').",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        root = options.get("root") or _configured_root()
        try:
            rules = database_rules(root)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        text = json.dumps(rules, indent=2) + "\n"
        output = options.get("output")
        if not output:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write the rules to {output}: {exc}") from exc
        if int(options.get("verbosity", 1)) > 0:
            self.stderr.write(f"Wrote the rules for root {root!r} to {output}.")


def _configured_root() -> str:
    """Return ``RTBRIDGE_OPTIONS['root']`` when the Firebase backend is configured."""
    options = get_setting("RTBRIDGE_OPTIONS") or {}
    root = options.get("root") if isinstance(options, dict) else None
    return root if isinstance(root, str) and root else "rtbridge"
