"""A page running the rtbridge JS client over a hosted vendor's browser SDK, for Chromium tests.

``/hosted/?channel=<name>`` loads the vendor's browser build (``/sdk/...``, from
``tests/wire/node_modules``) and the client's ES modules (``/js/...``, its source), connects
with the active backend's ``client_config()`` and records on ``window``: ``received`` (each
``n`` event's data and meta), ``states``, ``gaps``, ``recovered`` and ``resubscribed``. The
history and auth endpoints are this site's ``rtbridge/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.urls import include, path
from django.utils.html import json_script
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.static import serve

from rtbridge.publishers import get_backend

ROOT = Path(__file__).resolve().parents[2]
JS_SOURCE = ROOT / "rtbridge" / "clients" / "js" / "src"
NODE_MODULES = ROOT / "tests" / "wire" / "node_modules"
#: The CDN address firebase's browser builds import each other from; tests route it to
#: ``NODE_MODULES / "firebase"`` (nothing leaves the machine). The page imports from the same
#: address, so the app and the database share one copy of firebase-app.
FIREBASE_CDN = "https://www.gstatic.com/firebasejs/"


def _firebase_version() -> str:
    try:
        return str(json.loads((NODE_MODULES / "firebase" / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "missing"  # the page then fails to load, and the test says so


_SDK_TAGS = {
    "pusher": '<script src="/sdk/pusher-js/dist/web/pusher.min.js"></script>',
    "pubnub": '<script src="/sdk/pubnub/dist/web/pubnub.min.js"></script>',
    "firebase": "",
}
_SDK_IMPORTS = {
    "pusher": "const sdks = {};",
    "pubnub": "const sdks = { pubnubOptions: { logLevel: PubNub.LogLevel?.None } };",
    "firebase": """
      const { initializeApp } = await import(`${FIREBASE}/firebase-app.js`);
      const database = await import(`${FIREBASE}/firebase-database.js`);
      const app = initializeApp({ databaseURL: config.databaseURL, projectId: "demo-rtbridge" });
      const sdks = { firebase: { ...database, app } };""",
}

PAGE = """<!doctype html>
<html>
<head>
  <title>rtbridge hosted page</title>
  <link rel="icon" href="data:,">
  {sdk_tag}
  {config}
</head>
<body>
  <p id="state">none</p>
  <script type="module">
    import {{ connect }} from "/js/rtbridge.js";
    const config = JSON.parse(document.getElementById("rtbridge-config").textContent);
    const FIREBASE = {firebase};
    {sdk_import}
    Object.assign(window, {{ received: [], states: [], gaps: [], recovered: [], resubscribed: [], errors: [] }});
    const rt = connect({{ ...config, ...sdks }});
    window.rt = rt;
    rt.onState((state) => {{
      window.states.push(state);
      document.getElementById("state").textContent = state;
    }});
    rt.onError?.((error) => window.errors.push(String(error?.message ?? error)));
    rt.onGap?.((channel, info) => window.gaps.push([channel, info]));
    rt.onRecovered?.((channel, info) => window.recovered.push([channel, info]));
    rt.onResubscribed?.((channel, info) => window.resubscribed.push([channel, info]));
    const channel = rt.channel({channel});
    channel.listen("n", (data, meta) => window.received.push([data, meta ?? null]));
    channel.ready.then(() => (document.body.dataset.subscribed = "yes"));
  </script>
</body>
</html>"""


@ensure_csrf_cookie
def hosted_page(request: HttpRequest) -> HttpResponse:
    """Render the page for ``?channel=`` with the active hosted backend's client config."""
    backend = get_backend()
    config = {**backend.client_config(), "csrfToken": get_token(request)}
    return HttpResponse(
        PAGE.format(
            sdk_tag=_SDK_TAGS[backend.alias],
            config=json_script(config, "rtbridge-config"),
            sdk_import=_SDK_IMPORTS[backend.alias],
            channel=json.dumps(request.GET["channel"]),
            firebase=json.dumps(FIREBASE_CDN + _firebase_version()),
        )
    )


urlpatterns = [
    path("hosted/", hosted_page),
    path("js/<path:path>", serve, {"document_root": JS_SOURCE}),
    path("sdk/<path:path>", serve, {"document_root": NODE_MODULES}),
    path("rtbridge/", include("rtbridge.urls")),
]
