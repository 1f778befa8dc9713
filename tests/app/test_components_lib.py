"""The browser components' one library (``vitviz_app/components/lib.js``), run in Node: every component is built
on it (no copies of its parts), it decodes a payload the Python codec packed and hands it to a waiting view,
paints maps with the server's colour table, and writes a test probe (a window global) only under the test flag."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vitviz.export import pack
from vitviz_app.components._registry import LIB_JS, script

COMPONENTS = Path(__file__).resolve().parents[2] / "vitviz_app" / "components"
NAMES = ("attention_explorer", "rollout_explorer", "patch_follower", "tile_explorer", "drawing_canvas")
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="no Node.js to run the components' script")

# what lib.js does once for all: a component's own script must not do it again
_LIB_PARTS = {
    "payload decoding": r"new DataView|TextDecoder",
    "canvas sizing": r"devicePixelRatio",
    "painting": r"putImageData|lut\[",
    "legend": r"createImageData",
    "tooltip placement": r"\.style\.(left|top)\b|style, \{ display",
    "mounting": r"setTriggerValue|setStateValue|parentElement\.__",
    "window globals": r"window\.__vitviz|window\[",
}


def _own(name: str) -> str:
    return re.sub(r"//[^\n]*", "", (COMPONENTS / f"{name}.js").read_text())  # code, not comments


@pytest.mark.parametrize("name", NAMES)
def test_every_component_is_built_on_the_one_library(name):
    own = _own(name)
    assert re.search(r"^export default vvMount\(\w+(, \"\w+\")?\);$", own, re.MULTILINE), "mounted by vvMount"
    copies = {part for part, pattern in _LIB_PARTS.items() if re.search(pattern, own)}
    if name == "drawing_canvas":  # the sketch pad sizes its square canvas to its CSS width, a layout of its own
        copies -= {"canvas sizing"}
    assert not copies, f"{name}.js does again what lib.js does: {copies}"
    assert script(own).startswith("const VV_TEST_HOOKS = ") and LIB_JS in script(own)


def test_the_data_contract_keys_are_one_case():
    """Every key a component reads from its data, or writes into its probe, is snake_case."""
    for name in NAMES:
        own = _own(name)
        keys = set(re.findall(r"\bdata\.(?:text|committed)\.(\w+)", own))
        keys |= set(re.findall(r"\b(\w+):", "".join(re.findall(r"vvProbe\([^;]*;", own, re.DOTALL))))
        assert keys and all(re.fullmatch(r"[a-z0-9_]+", k) for k in keys), (name, keys)


def _run(flag: bool, body: str) -> dict:
    """Run ``body`` after lib.js in Node with a bare window (an EventTarget); returns what it prints as JSON."""
    code = f"""globalThis.window = new EventTarget();
globalThis.ImageData = class {{ constructor(w, h) {{ this.width = w; this.height = h;
  this.data = new Uint8ClampedArray(w * h * 4); }} }};
const VV_TEST_HOOKS = {'true' if flag else 'false'};
{LIB_JS}
{body}"""
    done = subprocess.run([NODE, "-"], input=code, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_node
@pytest.mark.parametrize("name", NAMES)
def test_every_component_script_parses(tmp_path, name):
    module = tmp_path / f"{name}.mjs"
    module.write_text(script((COMPONENTS / f"{name}.js").read_text()))
    done = subprocess.run([NODE, "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@needs_node
@pytest.mark.parametrize("flag", [False, True])
def test_a_probe_is_written_only_under_the_test_flag(flag):
    out = _run(flag, """let built = 0;
vvProbe("Thing", () => { built += 1; return { draw_count: 1 }; });
console.log(JSON.stringify({ probe: window.__vitvizThing || null, built,
  globals: Object.keys(window).filter((k) => k.startsWith("__vitviz")) }));""")
    assert out == ({"probe": {"draw_count": 1}, "built": 1, "globals": ["__vitvizThing"]} if flag else
                   {"probe": None, "built": 0, "globals": []}), "production builds no probe and writes no global"


@needs_node
def test_a_payload_packed_in_python_reaches_a_waiting_view_once():
    rows = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    blob = pack({"id": "p1", "tier": "heads"}, {"rows": rows, "image": b"\x01\x02"})
    out = _run(False, f"""const seen = [];
const stop = vvWhenPayload("p1", (p) => seen.push([p.header.id, Array.from(p.sections.rows), p.sections.image.length]));
let events = 0;
window.addEventListener("vitviz-payload", () => {{ events += 1; }});
vvCarry("{base64.b64encode(blob).decode()}");
vvCarry("{base64.b64encode(blob).decode()}");  // a rerun hands it again: kept once
vvCarry("not a payload");
console.log(JSON.stringify({{ seen, events, peek: vvPeekId("junk"), globals: Object.keys(window) }}));""")
    assert out["seen"] == [["p1", [0.0, 0.5, 1.0], 2]] and out["events"] == 1
    assert out["peek"] is None and out["globals"] == [], "the payload store is no named window global"


@needs_node
def test_maps_are_painted_with_the_colour_table_between_lo_and_hi():
    out = _run(False, """const lut = vvLut([[0, 0, 0, 0], [0.5, 255, 0, 0], [1, 255, 255, 255]]);
const image = vvPaint(new ImageData(4, 2), [99, 0, 0.5, 1, -3, 2, 0.25, 0.75, 7], 2, 4, lut, 0, 1, 0, 0, 1);
const flat = vvPaint(new ImageData(1, 1), [5], 1, 1, lut, 5, 5);  // lo = hi: no division by zero
const box = { getBoundingClientRect: () => ({ left: 10, top: 20, width: 100, height: 50 }) };
console.log(JSON.stringify({ rgb: Array.from(image.data).filter((_, i) => i % 4 !== 3), flat: Array.from(flat.data),
  fit: [vvFit(2, 420), vvFit(0.5, 420)], text: vvFormat("{a}, {b}", { a: 1 }),
  cells: [[60, 44], [5, 30], [110, 30]].map(([x, y]) => vvCellAt(box, { clientX: x, clientY: y }, 5, 10)) }));""")
    def colour(v: float) -> list[int]:  # black → red → white
        return [min(255, round(510 * v)), max(0, round(510 * v) - 255), max(0, round(510 * v) - 255)]

    expected = [colour(v) for v in (0.0, 0.5, 1.0, 0.0, 1.0, 0.25, 0.75, 1.0)]  # offset 1; clamped below and above
    assert np.abs(np.array(out["rgb"]).reshape(-1, 3) - np.array(expected)).max() <= 1
    assert out["flat"] == [0, 0, 0, 255]
    assert out["fit"] == [[420, 210], [210, 420]] and out["text"] == "1, {b}"
    assert out["cells"] == [[2, 5], None, None]
