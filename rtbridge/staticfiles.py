"""A staticfiles finder that serves the JS client straight from ``rtbridge/clients/js/``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.utils import get_files
from django.core import checks
from django.core.files.storage import FileSystemStorage

__all__ = ["FINDER_PATH", "JS_DIR", "STATIC_PREFIX", "RTBridgeJSFinder", "check_finder"]

#: The JS client (``src/``: the ES modules; ``classic/``: the classic-script build).
JS_DIR = Path(__file__).resolve().parent / "clients" / "js"
#: Static paths the finder answers: ``rtbridge/rtbridge.js`` → ``clients/js/src/rtbridge.js``.
STATIC_PREFIX = "rtbridge"
FINDER_PATH = "rtbridge.staticfiles.RTBridgeJSFinder"
# Only what a browser loads; tests, scripts and node_modules stay out of STATIC_ROOT.
_SOURCES = ("src", "classic")
_SUFFIXES = (".js",)


class _PrefixedStorage(FileSystemStorage):
    """A storage whose files collectstatic copies under ``rtbridge/``."""

    prefix = STATIC_PREFIX


class RTBridgeJSFinder(finders.BaseFinder):
    """Find ``rtbridge/<path>`` in the JS client's ``src/`` and then ``classic/`` directories.

    The client's source stays in one place (``rtbridge/clients/js/``, which is also the npm
    package) and Django serves and collects it as ``{% static 'rtbridge/rtbridge.js' %}``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storages = {name: _PrefixedStorage(location=str(JS_DIR / name)) for name in _SOURCES}

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Report a JS client directory missing from the installed package."""
        missing = [name for name in _SOURCES if not (JS_DIR / name).is_dir()]
        if missing:
            return [
                checks.Error(
                    "rtbridge's JS client is incomplete: "
                    f"{', '.join(str(JS_DIR / name) for name in missing)} missing.",
                    hint="Reinstall rtbridge; its wheel must include rtbridge/clients/js/src and "
                    "rtbridge/clients/js/classic.",
                    id="rtbridge.E101",
                )
            ]
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> Any:
        """Return the file system path of ``path`` (a list of matches when ``find_all``)."""
        find_all = find_all or bool(kwargs.get("all", False))
        matches: list[str] = []
        head, sep, rest = path.partition("/")
        if head == STATIC_PREFIX and sep and rest.endswith(_SUFFIXES):
            for name in _SOURCES:
                root = JS_DIR / name
                if str(root) not in finders.searched_locations:
                    finders.searched_locations.append(str(root))
                # resolve() and the parent check refuse "rtbridge/../../settings.py" tricks.
                resolved = (root / rest).resolve()
                if resolved.is_file() and root.resolve() in resolved.parents:
                    if not find_all:
                        return str(resolved)
                    matches.append(str(resolved))
        return matches if find_all else []

    def list(
        self, ignore_patterns: Iterable[str] | None
    ) -> Iterator[tuple[str, FileSystemStorage]]:
        """Yield every client file with its storage, for collectstatic."""
        for storage in self.storages.values():
            if not Path(storage.location).is_dir():
                continue
            for path in get_files(storage, list(ignore_patterns or ())):
                if path.endswith(_SUFFIXES):
                    yield path, storage


def check_finder(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when staticfiles is installed but cannot find the JS client (finder not listed)."""
    if not apps.is_installed("django.contrib.staticfiles"):
        return []
    configured = list(getattr(settings, "STATICFILES_FINDERS", []))
    if FINDER_PATH in configured:
        return []
    return [
        checks.Warning(
            "{% rtbridge_js %} and {% static 'rtbridge/rtbridge.js' %} need rtbridge's static "
            "files finder, which STATICFILES_FINDERS does not list.",
            hint=(
                "Add it after the defaults: STATICFILES_FINDERS = ["
                "'django.contrib.staticfiles.finders.FileSystemFinder', "
                "'django.contrib.staticfiles.finders.AppDirectoriesFinder', "
                f"'{FINDER_PATH}']"
            ),
            id="rtbridge.W101",
        )
    ]
