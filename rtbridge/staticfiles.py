"""The JS client's builds in ``rtbridge/static/rtbridge/``: which one a page loads; their checks."""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.utils import get_files
from django.core import checks
from django.core.files.storage import FileSystemStorage

__all__ = [
    "BUILD_COMMAND",
    "BUNDLES_FILE",
    "FINDER_PATH",
    "JS_DIR",
    "STATIC_DIR",
    "RTBridgeJSFinder",
    "check_finder",
    "script_path",
]

#: The JS client's package (``src/``: the ES modules the builds are made from).
JS_DIR = Path(__file__).resolve().parent / "clients" / "js"
#: The builds, where Django's ``AppDirectoriesFinder`` finds them as ``rtbridge/<name>``.
STATIC_DIR = Path(__file__).resolve().parent / "static" / "rtbridge"
#: Written with the builds: ``client_config()["backend"]`` → its module and classic file.
BUNDLES_FILE = STATIC_DIR / "bundles.json"
#: What rebuilds them in a checkout (they are committed; a test fails when they are stale).
BUILD_COMMAND = "make js-build"
#: The finder older set-ups list in ``STATICFILES_FINDERS`` (no longer needed; see ``W101``).
FINDER_PATH = "rtbridge.staticfiles.RTBridgeJSFinder"
STATIC_PREFIX = "rtbridge"


@functools.cache
def _bundles() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(BUNDLES_FILE.read_text(encoding="utf-8"))
    return manifest


def script_path(backend: str, *, classic: bool = False) -> str:
    """Return the static path of the one file a page of ``backend`` loads.

    ``backend`` is ``client_config()["backend"]`` (``local``, ``pusher``, ...). Each transport
    has its own minified build, so a self-hosted page downloads no Pusher, PubNub or Firebase
    code; a backend with no build of its own (a custom transport) gets the full client.
    ``classic`` picks the classic-script build (``<script src>``) over the ES module.
    """
    manifest = _bundles()
    entry = manifest["backends"].get(backend, manifest["all"])
    return str(entry["classic" if classic else "module"])


def _missing_builds() -> list[str]:
    try:
        manifest = _bundles()
    except (OSError, ValueError):
        return [str(BUNDLES_FILE)]
    entries = [manifest["all"], *manifest["backends"].values()]
    names = {name for entry in entries for name in entry.values()}
    return sorted(
        str(STATIC_DIR.parent / name) for name in names if not (STATIC_DIR.parent / name).is_file()
    )


def check_finder(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Report missing builds (``E101``) and the retired finder still listed (``W101``)."""
    messages: list[checks.CheckMessage] = []
    missing = _missing_builds()
    if missing:
        messages.append(
            checks.Error(
                f"rtbridge's built JS client is incomplete: {', '.join(missing)} missing, "
                "so {% rtbridge_js %} would point at files that do not exist.",
                hint="Reinstall rtbridge (its wheel ships rtbridge/static/rtbridge/); in a "
                f"checkout, run `{BUILD_COMMAND}`.",
                id="rtbridge.E101",
            )
        )
    if FINDER_PATH in list(getattr(settings, "STATICFILES_FINDERS", [])):
        messages.append(
            checks.Warning(
                f"STATICFILES_FINDERS lists {FINDER_PATH}, which is no longer needed: the JS "
                "client is built into rtbridge/static/rtbridge/, which Django's "
                "AppDirectoriesFinder serves and collects.",
                hint=f"Remove '{FINDER_PATH}' from STATICFILES_FINDERS (if only Django's "
                "FileSystemFinder and AppDirectoriesFinder remain, delete the setting). The "
                "finder will be removed in a later release.",
                id="rtbridge.W101",
            )
        )
    return messages


class _PrefixedStorage(FileSystemStorage):
    """A storage whose files collectstatic copies under ``rtbridge/``."""

    prefix = STATIC_PREFIX


class RTBridgeJSFinder(finders.BaseFinder):
    """Deprecated: serves the JS client's ``src/`` modules as ``rtbridge/<path>``.

    Kept so that a project listing it keeps working (check ``W101`` asks to remove it). It
    answers only names the built files do not have (``rtbridge/client.js``, ...): the builds
    (``rtbridge/rtbridge.js``, ...) come from ``AppDirectoriesFinder`` whatever the order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn(
            f"{FINDER_PATH} is deprecated and no longer needed; remove it from "
            "STATICFILES_FINDERS (see check rtbridge.W101).",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)
        self.root = JS_DIR / "src"
        self.storage = _PrefixedStorage(location=str(self.root))

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Report nothing: ``check_finder`` (tag ``rtbridge``) warns about this finder."""
        return []

    def _serves(self, rest: str) -> bool:
        return rest.endswith(".js") and not (STATIC_DIR / rest).exists()

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> Any:
        """Return the file system path of ``path`` (a list of matches when ``find_all``)."""
        find_all = find_all or bool(kwargs.get("all", False))
        head, sep, rest = path.partition("/")
        if head == STATIC_PREFIX and sep and self._serves(rest):
            if str(self.root) not in finders.searched_locations:
                finders.searched_locations.append(str(self.root))
            # resolve() and the parent check refuse "rtbridge/../../settings.py" tricks.
            resolved = (self.root / rest).resolve()
            if resolved.is_file() and self.root.resolve() in resolved.parents:
                return [str(resolved)] if find_all else str(resolved)
        return []

    def list(
        self, ignore_patterns: Iterable[str] | None
    ) -> Iterator[tuple[str, FileSystemStorage]]:
        """Yield the ``src/`` modules the builds do not replace, for collectstatic."""
        if not self.root.is_dir():
            return
        for path in get_files(self.storage, list(ignore_patterns or ())):
            if self._serves(path):
                yield path, self.storage
