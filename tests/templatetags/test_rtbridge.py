"""``{% rtbridge_config %}`` / ``{% rtbridge_js %}`` and the JS client's static files finder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.template import Context, Template
from django.test import override_settings

from rtbridge.backends.base import BaseBackend
from rtbridge.staticfiles import FINDER_PATH, JS_DIR, RTBridgeJSFinder, check_finder

FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    FINDER_PATH,
]


class HostileConfigBackend(BaseBackend):
    """A backend whose public config tries to break out of the script element."""

    alias = "hostile"

    def publish(self, message: Any) -> None:
        raise NotImplementedError

    def client_config(self) -> dict[str, Any]:
        return {"backend": "local", "url": "</script><script>alert(1)</script>", "note": "a & b"}


def clear_finders() -> None:
    finders.get_finder.cache_clear()  # type: ignore[attr-defined]


def render(source: str, **context: Any) -> str:
    return Template("{% load rtbridge %}" + source).render(Context(context))


def config_of(html: str, element_id: str = "rtbridge-config") -> Any:
    match = re.fullmatch(
        rf'<script id="{element_id}" type="application/json">(.*)</script>', html, re.S
    )
    assert match, html
    return json.loads(match.group(1))


def test_config_renders_the_active_backends_client_config() -> None:
    assert config_of(render("{% rtbridge_config %}")) == {
        "backend": "locmem",
        "authEndpoint": "/rtbridge/auth",
        "dataEndpoint": "/rtbridge/data",
    }


@override_settings(RTBRIDGE_BACKEND="tests.templatetags.test_rtbridge.HostileConfigBackend")
def test_config_is_escaped_so_no_value_closes_the_element() -> None:
    html = render("{% rtbridge_config %}")
    assert html.count("</script>") == 1
    assert "\\u003C/script\\u003E" in html
    assert "\\u0026" in html
    assert config_of(html)["url"] == "</script><script>alert(1)</script>"


def test_config_element_id_can_be_changed() -> None:
    html = render('{% rtbridge_config "rt-2" %}')
    assert config_of(html, "rt-2")["backend"] == "locmem"


def test_js_renders_the_module_script() -> None:
    assert render("{% rtbridge_js %}") == (
        '<script type="module" src="/static/rtbridge/global.js"></script>'
    )


def test_js_classic_renders_the_classic_build_with_a_nonce() -> None:
    html = render("{% rtbridge_js classic=True nonce=n %}", n='abc"><x')
    assert html == (
        '<script src="/static/rtbridge/rtbridge.iife.js" nonce="abc&quot;&gt;&lt;x"></script>'
    )


@override_settings(STATIC_URL="https://cdn.example.test/s/")
def test_js_follows_static_url() -> None:
    assert 'src="https://cdn.example.test/s/rtbridge/global.js"' in render("{% rtbridge_js %}")


def test_finder_maps_rtbridge_paths_to_src_and_classic() -> None:
    finder = RTBridgeJSFinder()
    assert finder.find("rtbridge/rtbridge.js") == str(JS_DIR / "src" / "rtbridge.js")
    assert finder.find("rtbridge/transports/selfhosted.js") == str(
        JS_DIR / "src" / "transports" / "selfhosted.js"
    )
    assert finder.find("rtbridge/rtbridge.iife.js") == str(JS_DIR / "classic" / "rtbridge.iife.js")
    assert finder.find("rtbridge/rtbridge.js", find_all=True) == [
        str(JS_DIR / "src" / "rtbridge.js")
    ]
    assert finder.find("rtbridge/nope.js") == []
    assert finder.find("rtbridge/nope.js", find_all=True) == []
    assert finder.find("other/rtbridge.js") == []
    assert finder.find("rtbridge/../package.json") == []
    assert finder.find("rtbridge/../../../__init__.py") == []
    assert finder.check() == []


def test_finder_lists_only_browser_files() -> None:
    listed = sorted(path for path, _ in RTBridgeJSFinder().list([]))
    assert "rtbridge.js" in listed
    assert "global.js" in listed
    assert "transports/selfhosted.js" in listed
    assert "rtbridge.iife.js" in listed
    assert all(path.endswith(".js") for path in listed)
    assert not any("node_modules" in path or path.startswith("test") for path in listed)


def test_collectstatic_copies_the_client(tmp_path: Path) -> None:
    with override_settings(STATIC_ROOT=str(tmp_path), STATICFILES_FINDERS=FINDERS):
        clear_finders()
        try:
            call_command("collectstatic", interactive=False, verbosity=0)
        finally:
            clear_finders()
    for path in (
        "rtbridge.js",
        "global.js",
        "client.js",
        "transports/selfhosted.js",
        "rtbridge.iife.js",
    ):
        assert (tmp_path / "rtbridge" / path).is_file(), path
    copied = (tmp_path / "rtbridge" / "rtbridge.js").read_text(encoding="utf-8")
    assert copied == (JS_DIR / "src" / "rtbridge.js").read_text(encoding="utf-8")


def test_findstatic_through_django(tmp_path: Path) -> None:
    with override_settings(STATICFILES_FINDERS=FINDERS):
        clear_finders()
        try:
            assert finders.find("rtbridge/rtbridge.js") == str(JS_DIR / "src" / "rtbridge.js")
        finally:
            clear_finders()


def test_check_warns_when_the_finder_is_not_listed() -> None:
    with override_settings(STATICFILES_FINDERS=FINDERS[:2]):
        (warning,) = check_finder()
    assert warning.id == "rtbridge.W101"
    assert FINDER_PATH in str(warning.hint)
    with override_settings(STATICFILES_FINDERS=FINDERS):
        assert check_finder() == []


@pytest.mark.parametrize("missing", ["src", "classic"])
def test_finder_check_reports_a_missing_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: str
) -> None:
    for name in ("src", "classic"):
        if name != missing:
            (tmp_path / name).mkdir()
    monkeypatch.setattr("rtbridge.staticfiles.JS_DIR", tmp_path)
    (error,) = RTBridgeJSFinder().check()
    assert error.id == "rtbridge.E101"
    assert missing in error.msg
