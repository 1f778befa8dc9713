// vitviz's browser library, shared by every component: _registry.py puts it in front of each component's own
// script (each component is one inline ES module: nothing is fetched, the app works offline).
//
// The data contract. Every component is mounted with {payload, committed, colours, text}, keys in snake_case:
//   payload    the id of the payload (vitviz/export/_codec.py) that the invisible carrier delivers, or null;
//   committed  the page's state the component opens on (its query, layer, patch, sketch...); its `url`, when
//              given, is that state's URL parameters, which the component writes into the address bar;
//   colours    the stops [[t, r, g, b], ...] of the server figures' colour scale (vitviz/export/colours.py), or null;
//   text       every text it shows, in the page's language; {name} fields are filled here.
// What a component sends back (a commit) is checked by its Python handler before the page uses it.
//
// Parts: payload (decode, keep, wait for), text, colour table, canvas sizing, painting maps, legend, tooltip,
// pointer → cell, the base class of a view and the mount function. VV_TEST_HOOKS is written in front of this
// file by _registry.py: true only when the server runs with VITVIZ_TEST_HOOKS=1 (tests, benchmarks), when each
// view exposes what it drew as window.__vitviz<Name>. In production no window global is written.

// ---- payload: "VVZ1" | uint32 LE header length | header JSON | pad to 4 | sections (offsets after the pad) ----

const VV_MAGIC = [86, 86, 90, 49]; // "VVZ1"
const VV_KEEP = 4; // payloads kept per page (one per capture)
// The carrier and the components are separate modules: the payloads they share are kept under this key.
const VV_STORE = Symbol.for("vitviz.payloads");

function vvBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (data && data.buffer instanceof ArrayBuffer) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === "string") {
    const text = atob(data);
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }
  return null;
}

// The container's header length and header, read from `bytes` without copying them (null when not one).
function vvHeader(bytes) {
  if (!bytes || bytes.length < 8 || VV_MAGIC.some((b, i) => bytes[i] !== b)) return null;
  const length = new DataView(bytes.buffer, bytes.byteOffset, 8).getUint32(4, true);
  return { length, header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) };
}

// The payload's id, without copying or decoding its sections (null when `data` is not a payload).
function vvPeekId(data) {
  try { const found = vvHeader(vvBytes(data)); return found ? found.header.id : null; } catch (e) { return null; }
}

function vvDecode(data) {
  const bytes = vvBytes(data);
  const found = vvHeader(bytes);
  if (!found) return null;
  const { length, header } = found;
  // copy once so every typed-array view below is aligned to the start of its own buffer
  const buffer = bytes.slice().buffer;
  const start = (8 + length + 3) & ~3;
  const sections = {};
  for (const [name, s] of Object.entries(header.sections)) {
    const at = start + s.offset;
    if (s.dtype === "uint8" || s.dtype === "bytes") sections[name] = new Uint8Array(buffer, at, s.nbytes);
    else if (s.dtype === "float32") sections[name] = new Float32Array(buffer, at, s.nbytes / 4);
    else throw new Error("vitviz payload: unknown dtype " + s.dtype);
  }
  return { header, sections, nbytes: bytes.length };
}

function vvStore() {
  if (!window[VV_STORE]) Object.defineProperty(window, VV_STORE, { value: new Map() });
  return window[VV_STORE];
}

function vvRemember(payload) {
  const store = vvStore();
  if (store.has(payload.header.id)) return;
  store.set(payload.header.id, payload);
  while (store.size > VV_KEEP) store.delete(store.keys().next().value);
  window.dispatchEvent(new CustomEvent("vitviz-payload", { detail: payload.header.id }));
}

// The carrier's whole work: keep the payload in `data` (a payload already kept is not copied and decoded again).
function vvCarry(data) {
  const id = vvPeekId(data);
  if (id !== null && vvStore().has(id)) return;
  const payload = vvDecode(data);
  if (payload) vvRemember(payload);
}

// Calls back with the payload `id` now, or as soon as its carrier has delivered it; returns a function that stops
// waiting.
function vvWhenPayload(id, callback) {
  const found = vvStore().get(id);
  if (found) {
    callback(found);
    return () => {};
  }
  const listener = (event) => {
    if (event.detail !== id) return;
    window.removeEventListener("vitviz-payload", listener);
    callback(vvStore().get(id));
  };
  window.addEventListener("vitviz-payload", listener);
  return () => window.removeEventListener("vitviz-payload", listener);
}

// Decodes the payload's picture (section "image") into owner.image (an ImageBitmap, or null when there is none)
// once per payload, then calls `redraw`; for a payload already seen it does nothing, so a rerun with the same
// payload is drawn once.
function vvLoadImage(owner, redraw) {
  const id = owner.payload.header.id, s = owner.payload.sections.image, info = owner.payload.header.image;
  if (owner.imageFor === id) return;
  owner.imageFor = id;
  owner.image = null;
  if (!s || !info) return;
  createImageBitmap(new Blob([s], { type: info.mime }))
    .then((bitmap) => { if (owner.imageFor === id) owner.image = bitmap; }, () => {})
    .then(() => { if (owner.imageFor === id) redraw(); });
}

// Row `k` (n values) of a quantised part `name` of `sections`, decoded: uint8 codes with per-row `name_lo` and
// `name_step`. When the part has a `name_prefix` section (PrefixedRows in vitviz/export/_codec.py), each row's
// first P values are those float32s and only the other n − P are codes, on their own scale.
function vvRow(sections, name, k, n) {
  const q = sections[name], lo = sections[`${name}_lo`][k], step = sections[`${name}_step`][k];
  const prefix = sections[`${name}_prefix`];
  const P = prefix ? prefix.length / sections[`${name}_lo`].length : 0, width = n - P;
  const out = new Float32Array(n);
  for (let i = 0; i < P; i++) out[i] = prefix[k * P + i];
  for (let i = 0; i < width; i++) out[P + i] = lo + q[k * width + i] * step;
  return out;
}

// ---- text ---------------------------------------------------------------------------------------------------

// A text of the component's data (written in Python, in the page's language) with its {name} fields filled.
function vvFormat(template, values) {
  return String(template === undefined || template === null ? "" : template)
    .replace(/\{(\w+)\}/g, (field, name) => (values && name in values ? String(values[name]) : field));
}

// ---- colours and painting -------------------------------------------------------------------------------------

// A 256-entry RGB lookup table from colour stops [[t, r, g, b], ...]: the server figure's own colour scale,
// interpolated linearly in RGB as Plotly does.
function vvLut(stops) {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 0;
    while (k < stops.length - 2 && t > stops[k + 1][0]) k++;
    const [t0, t1] = [stops[k][0], stops[k + 1][0]], f = t1 > t0 ? Math.min(1, Math.max(0, (t - t0) / (t1 - t0))) : 0;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(stops[k][c + 1] * (1 - f) + stops[k + 1][c + 1] * f);
  }
  return lut;
}

// Paints a rows × cols map into `image` (an ImageData) with its top-left cell at (x0, y0): value
// values[offset + r * cols + c] takes the table's colour for its place between lo (first) and hi (last), clamped.
function vvPaint(image, values, rows, cols, lut, lo, hi, x0 = 0, y0 = 0, offset = 0) {
  const span = hi > lo ? hi - lo : 1, data = image.data, width = image.width;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = Math.max(0, Math.min(255, Math.round(((values[offset + r * cols + c] - lo) / span) * 255))) * 3;
      const at = ((y0 + r) * width + x0 + c) * 4;
      data[at] = lut[k]; data[at + 1] = lut[k + 1]; data[at + 2] = lut[k + 2]; data[at + 3] = 255;
    }
  }
  return image;
}

// A canvas holding `image` pixel for pixel (`canvas` is reused when given), to be drawn scaled up.
function vvPixels(image, canvas) {
  const out = canvas || document.createElement("canvas");
  out.width = image.width; out.height = image.height;
  out.getContext("2d").putImageData(image, 0, 0);
  return out;
}

// Draws `source` (or its part `from` = [x, y, w, h]) over (x, y, w, h) of `ctx`, every pixel a crisp block.
function vvBlit(ctx, source, x, y, w, h, alpha = 1, from = null) {
  ctx.imageSmoothingEnabled = false;
  ctx.globalAlpha = alpha;
  if (from) ctx.drawImage(source, from[0], from[1], from[2], from[3], x, y, w, h);
  else ctx.drawImage(source, x, y, w, h);
  ctx.globalAlpha = 1;
}

// Draws a rows × cols map (see vvPaint) over (x, y, w, h) of `ctx`; `scratch` is a canvas to reuse.
function vvDrawMap(ctx, values, rows, cols, lut, lo, hi, box, { offset = 0, alpha = 1, scratch = null } = {}) {
  const cells = vvPixels(vvPaint(new ImageData(cols, rows), values, rows, cols, lut, lo, hi, 0, 0, offset), scratch);
  vvBlit(ctx, cells, box[0], box[1], box[2], box[3], alpha);
  return cells;
}

// The colour table along `canvas` (a horizontal legend), its range written into `label`.
function vvDrawScale(canvas, lut, label, range) {
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(canvas.width, 1);
  for (let x = 0; x < canvas.width; x++) {
    const k = Math.round((x / (canvas.width - 1)) * 255) * 3;
    img.data.set([lut[k], lut[k + 1], lut[k + 2], 255], x * 4);
  }
  for (let y = 0; y < canvas.height; y++) ctx.putImageData(img, 0, y);
  label.textContent = range;
}

// ---- canvas, pointer, tooltip ---------------------------------------------------------------------------------

// Sizes `canvas` to w × h css px at the screen's pixel ratio (its buffer only when that changed) and returns its
// 2-D context, cleared, one unit a css px.
function vvCanvas(canvas, w, h) {
  const ratio = window.devicePixelRatio || 1, bw = Math.round(w * ratio), bh = Math.round(h * ratio);
  if (canvas.width !== bw || canvas.height !== bh) { canvas.width = bw; canvas.height = bh; }
  canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return ctx;
}

// [w, h] in css px of a picture of aspect ratio `aspect` (width / height) whose longer side is `side`.
function vvFit(aspect, side) {
  return aspect >= 1 ? [side, Math.round(side / aspect)] : [Math.round(side * aspect), side];
}

// [row, col] of the rows × cols grid that fills `element`, under the pointer of `event`; null outside it.
function vvCellAt(element, event, rows, cols) {
  const box = element.getBoundingClientRect();
  const x = (event.clientX - box.left) / box.width, y = (event.clientY - box.top) / box.height;
  if (!(x >= 0 && y >= 0 && x < 1 && y < 1)) return null;
  return [Math.floor(y * rows), Math.floor(x * cols)];
}

// Shows `tip` (absolutely placed in its parent, the stage) beside the pointer, never past the stage's right edge.
function vvShowTip(tip, event, text) {
  const stage = tip.parentElement.getBoundingClientRect();
  tip.textContent = text;
  tip.style.display = "block";
  tip.style.left = `${Math.min(event.clientX - stage.left + 12, stage.width - 10)}px`;
  tip.style.top = `${event.clientY - stage.top + 14}px`;
}

function vvHideTip(tip) { tip.style.display = "none"; }

// Writes `params` ({key: id, or null to remove}) into the address bar, replacing the entry (no history step): the
// page's committed view, for a page whose reruns are a fragment's, which Streamlit does not pass on to the URL.
function vvKeepInUrl(params) {
  if (!params || typeof params !== "object") return;
  const url = new URL(window.location.href);
  let changed = false;
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined) {
      if (url.searchParams.has(key)) { url.searchParams.delete(key); changed = true; }
    } else if (url.searchParams.get(key) !== String(value)) {
      url.searchParams.set(key, String(value)); changed = true;
    }
  }
  if (changed) window.history.replaceState(window.history.state, "", url.toString());
}

// Whether the reader's pointer cannot hover (a touch screen): the CSS media query the page's texts follow too.
function vvTouch() { return typeof matchMedia === "function" && matchMedia("(hover: none)").matches; }

// ---- views ----------------------------------------------------------------------------------------------------

// Test hooks: with VV_TEST_HOOKS, window.__vitviz<name> = build(), what a view drew (for tests and benchmarks).
function vvProbe(name, build) {
  if (VV_TEST_HOOKS) window[`__vitviz${name}`] = build();
}

// A view of a payload. A subclass builds its elements (vvElements), draws in draw(), and may define
// committed(c) (the page's committed state changed), received(data) (new data) and setPayload(payload,
// previous) (its payload arrived).
class VVView {
  constructor(root) {
    this.root = root;
    this.payload = null;
    this.drawCount = 0;
    this.stop = () => {};
    this.send = () => {};
  }

  // Builds `html` into a new element of class `className` under the root; this.el[name] is its element of class
  // `${prefix}${name}` for each of `names`.
  vvElements(className, html, prefix, names) {
    const box = document.createElement("div");
    box.className = className;
    box.innerHTML = html;
    this.root.appendChild(box);
    this.el = {};
    for (const name of names) this.el[name] = box.querySelector(`.${prefix}${name}`);
    return box;
  }

  update(data, send) {
    this.send = send;
    // Streamlit also calls back with unchanged data (e.g. after our own commit): nothing to draw again
    const signature = JSON.stringify(data);
    if (signature === this.signature && this.payload) return;
    this.signature = signature;
    this.data = data;
    if (data.colours) this.lut = vvLut(data.colours);
    const committed = JSON.stringify(data.committed);
    if (committed !== this.committedSeen) {
      this.committedSeen = committed;
      if (data.committed) vvKeepInUrl(data.committed.url); // the page's committed view, in the address bar too
      this.committed(data.committed);
    }
    this.received(data);
    this.stop();
    this.stop = vvWhenPayload(data.payload, (payload) => {
      const previous = this.payload;
      this.payload = payload;
      this.setPayload(payload, previous);
    });
  }

  committed(c) {}

  received(data) {}

  setPayload(payload, previous) { this.draw(); }

  draw() {}

  // The text `name` of the data with its {fields} filled; on a touch screen (no hover) its `name_touch` variant
  // when the data has one ("tap" instead of "hover" and "Shift").
  t(name, fields) {
    const text = (this.data && this.data.text) || {};
    const touch = vvTouch() && text[`${name}_touch`] !== undefined;
    return vvFormat(text[touch ? `${name}_touch` : name], fields || {});
  }
}

// A component's entry point: one `View` per element, handed every update. What the view sends goes back as the
// trigger value "commit", or with `state`, as the state value of that name.
function vvMount(View, state = null) {
  const key = Symbol("vitviz.view");
  return function (component) {
    const { data, parentElement } = component;
    const send = state ? (value) => component.setStateValue(state, value)
      : (value) => component.setTriggerValue("commit", value);
    if (!parentElement[key]) parentElement[key] = new View(parentElement);
    const view = parentElement[key];
    view.update(data, send);
    return () => view.stop();
  };
}
