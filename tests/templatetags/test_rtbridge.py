"""``{% rtbridge_config %}`` / ``{% rtbridge_js %}``, the built client files and the retired finder."""

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

from rtbridge import staticfiles
from rtbridge.backends.base import BaseBackend
from rtbridge.staticfiles import (
    FINDER_PATH,
    JS_DIR,
    STATIC_DIR,
    RTBridgeJSFinder,
    check_finder,
    script_path,
)

DEFAULT_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
]
WITH_OLD_FINDER = [*DEFAULT_FINDERS, FINDER_PATH]


class HostileConfigBackend(BaseBackend):
    """A backend whose public config tries to break out of the script element."""

    alias = "hostile"

    def publish(self, message: Any) -> None:
        raise NotImplementedError

    def client_config(self) -> dict[str, Any]:
        return {"backend": "local", "url": "</script><script>alert(1)</script>", "note": "a & b"}


class PigeonBackend(BaseBackend):
    """A backend with a transport of its own, which the builds do not know."""

    alias = "pigeon"

    def publish(self, message: Any) -> None:
        raise NotImplementedError

    def client_config(self) -> dict[str, Any]:
        return {"backend": "pigeon"}


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


@pytest.mark.parametrize(
    ("backend", "build"),
    [
        ("local", "selfhosted"),
        ("redis", "selfhosted"),
        ("selfhosted", "selfhosted"),
        ("pusher", "pusher"),
        ("pubnub", "pubnub"),
        ("firebase", "firebase"),
        ("locmem", "null"),
        ("dummy", "null"),
        ("console", "null"),
        ("null", "null"),
    ],
)
def test_each_backend_gets_the_build_of_its_transport(backend: str, build: str) -> None:
    assert script_path(backend) == f"rtbridge/rtbridge.{build}.js"
    assert script_path(backend, classic=True) == f"rtbridge/rtbridge.{build}.iife.js"


def test_a_backend_with_its_own_transport_gets_the_full_client() -> None:
    assert script_path("pigeon") == "rtbridge/rtbridge.js"
    assert script_path("pigeon", classic=True) == "rtbridge/rtbridge.iife.js"


def test_js_renders_one_module_script_for_the_active_backend() -> None:
    # tests.settings: RTBRIDGE_BACKEND = "locmem", whose page has the null transport.
    assert render("{% rtbridge_js %}") == (
        '<script type="module" src="/static/rtbridge/rtbridge.null.js"></script>'
    )
    with override_settings(RTBRIDGE_BACKEND="local", RTBRIDGE_OPTIONS={}):
        assert render("{% rtbridge_js %}") == (
            '<script type="module" src="/static/rtbridge/rtbridge.selfhosted.js"></script>'
        )
        assert render("{% rtbridge_js_url %}") == "/static/rtbridge/rtbridge.selfhosted.js"


@override_settings(RTBRIDGE_BACKEND="tests.templatetags.test_rtbridge.PigeonBackend")
def test_js_renders_the_full_client_for_an_unknown_transport() -> None:
    assert render("{% rtbridge_js %}") == (
        '<script type="module" src="/static/rtbridge/rtbridge.js"></script>'
    )


def test_js_classic_renders_the_classic_build_with_a_nonce() -> None:
    html = render("{% rtbridge_js classic=True nonce=n %}", n='abc"><x')
    assert html == (
        '<script src="/static/rtbridge/rtbridge.null.iife.js" nonce="abc&quot;&gt;&lt;x"></script>'
    )
    assert render("{% rtbridge_js_url classic=True %}") == "/static/rtbridge/rtbridge.null.iife.js"


@override_settings(STATIC_URL="https://cdn.example.test/s/")
def test_js_follows_static_url() -> None:
    assert 'src="https://cdn.example.test/s/rtbridge/rtbridge.null.js"' in render(
        "{% rtbridge_js %}"
    )


def test_every_build_bundles_json_names_is_shipped() -> None:
    manifest = json.loads(staticfiles.BUNDLES_FILE.read_text(encoding="utf-8"))
    names = {manifest["all"]["module"], manifest["all"]["classic"]}
    names |= {name for entry in manifest["backends"].values() for name in entry.values()}
    assert len(names) == 12, names  # the full client and five transports, two forms each
    for name in names:
        assert (STATIC_DIR.parent / name).is_file(), name
    assert check_finder() == []


def test_django_default_finders_find_the_builds() -> None:
    # tests.settings sets no STATICFILES_FINDERS: Django's defaults, as in a new project.
    clear_finders()
    try:
        assert finders.find("rtbridge/rtbridge.selfhosted.js") == str(
            STATIC_DIR / "rtbridge.selfhosted.js"
        )
        assert finders.find("rtbridge/rtbridge.js") == str(STATIC_DIR / "rtbridge.js")
    finally:
        clear_finders()


def test_collectstatic_with_manifest_storage_and_the_tag_gives_the_hashed_name(
    tmp_path: Path,
) -> None:
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    with override_settings(
        STATIC_ROOT=str(tmp_path), STORAGES=storages, RTBRIDGE_BACKEND="local", RTBRIDGE_OPTIONS={}
    ):
        clear_finders()
        try:
            call_command("collectstatic", interactive=False, verbosity=0)
            html = render("{% rtbridge_js %}")
            classic = render("{% rtbridge_js classic=True %}")
        finally:
            clear_finders()
    match = re.fullmatch(
        r'<script type="module" src="/static/(rtbridge/rtbridge\.selfhosted\.[0-9a-f]{12}\.js)">'
        r"</script>",
        html,
    )
    assert match, html
    hashed = tmp_path / match.group(1)
    assert hashed.read_bytes() == (STATIC_DIR / "rtbridge.selfhosted.js").read_bytes()
    assert re.search(r"rtbridge\.selfhosted\.iife\.[0-9a-f]{12}\.js", classic), classic
    # Only the builds are collected: no src/ module, test or node_modules file.
    collected = sorted(p.name for p in (tmp_path / "rtbridge").iterdir())
    assert not [name for name in collected if name.startswith(("client", "global", "channel"))]


def test_the_build_check_reports_missing_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "rtbridge").mkdir()
    (tmp_path / "rtbridge" / "bundles.json").write_text(
        staticfiles.BUNDLES_FILE.read_text(encoding="utf-8"), encoding="utf-8"
    )
    (tmp_path / "rtbridge" / "rtbridge.js").write_text("", encoding="utf-8")
    monkeypatch.setattr(staticfiles, "STATIC_DIR", tmp_path / "rtbridge")
    monkeypatch.setattr(staticfiles, "BUNDLES_FILE", tmp_path / "rtbridge" / "bundles.json")
    staticfiles._bundles.cache_clear()
    try:
        (error,) = check_finder()
        assert error.id == "rtbridge.E101"
        assert "rtbridge.selfhosted.js" in error.msg
        assert "make js-build" in str(error.hint)
        (tmp_path / "rtbridge" / "bundles.json").unlink()
        staticfiles._bundles.cache_clear()
        (error,) = check_finder()
        assert "bundles.json" in error.msg
    finally:
        staticfiles._bundles.cache_clear()


def test_the_retired_finder_still_listed_gets_a_warning() -> None:
    assert check_finder() == []
    with override_settings(STATICFILES_FINDERS=WITH_OLD_FINDER):
        (warning,) = check_finder()
    assert warning.id == "rtbridge.W101"
    assert f"Remove '{FINDER_PATH}'" in str(warning.hint)


def test_the_retired_finder_keeps_old_module_paths_working() -> None:
    with pytest.warns(DeprecationWarning, match="remove it from STATICFILES_FINDERS"):
        finder = RTBridgeJSFinder()
    assert finder.find("rtbridge/client.js") == str(JS_DIR / "src" / "client.js")
    assert finder.find("rtbridge/transports/selfhosted.js") == str(
        JS_DIR / "src" / "transports" / "selfhosted.js"
    )
    assert finder.find("rtbridge/client.js", find_all=True) == [str(JS_DIR / "src" / "client.js")]
    # The builds win over the old modules of the same name, whatever the finder order.
    assert finder.find("rtbridge/rtbridge.js") == []
    assert finder.find("rtbridge/nope.js") == []
    assert finder.find("other/client.js") == []
    assert finder.find("rtbridge/../package.json") == []
    assert finder.find("rtbridge/../../../__init__.py") == []
    listed = sorted(path for path, _ in finder.list([]))
    assert "client.js" in listed
    assert "rtbridge.js" not in listed
    assert all(path.endswith(".js") for path in listed)
    with override_settings(STATICFILES_FINDERS=WITH_OLD_FINDER[::-1]):
        clear_finders()
        try:
            with pytest.warns(DeprecationWarning):
                assert finders.find("rtbridge/rtbridge.js") == str(STATIC_DIR / "rtbridge.js")
        finally:
            clear_finders()
