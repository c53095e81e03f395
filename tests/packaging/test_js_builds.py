"""The committed browser builds (rtbridge/static/rtbridge/, classic/) match src/ and hold one transport each."""

from __future__ import annotations

import json
import subprocess

from rtbridge.staticfiles import BUILD_COMMAND, JS_DIR, STATIC_DIR

from .tools import node, run


def test_the_committed_builds_match_src() -> None:
    result = subprocess.run(
        [node(), "scripts/build.js", "--check"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{result.stderr.strip()}\nThe builds are committed: after editing "
        f"rtbridge/clients/js/src, run `{BUILD_COMMAND}` and commit the result."
    )


def test_a_one_transport_build_refuses_the_others_and_sets_the_global() -> None:
    script = """
const [file, own, other] = process.argv.slice(1);
const m = await import(file);
let refused = null;
try { m.connect({backend: other}); } catch (error) { refused = [error.name, error.code, error.message]; }
const rt = m.connect({backend: own, quiet: true});
await rt.ready();
console.log(JSON.stringify({refused, state: rt.state, global: globalThis.RTBridge.connect === m.connect}));
rt.disconnect();
"""
    result = run(
        [
            node(),
            "--input-type=module",
            "-e",
            script,
            str(STATIC_DIR / "rtbridge.null.js"),
            "locmem",
            "local",
        ],
        cwd=JS_DIR,
    )
    answer = json.loads(result.stdout)
    name, code, message = answer["refused"]
    assert (name, code) == ("RTBridgeError", "missing_transport")
    assert "only the null transport, not selfhosted" in message
    assert answer["state"] == "connected"
    assert answer["global"] is True
