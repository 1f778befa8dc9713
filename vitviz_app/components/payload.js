// Reads a vitviz payload (vitviz/export/_codec.py) and keeps it in the page, keyed by its id.
//
// Shared by the components: the Python wrapper puts this file in front of each component's own script.
// Container: "VVZ1" | uint32 LE header length | header JSON | pad to 4 | sections (offsets after the pad).

const VV_MAGIC = [86, 86, 90, 49]; // "VVZ1"
const VV_KEEP = 4; // payloads kept per page (one per capture)

// A text of the component's data (written in Python, in the page's language) with its {name} fields filled.
function vvFormat(template, values) {
  return String(template === undefined || template === null ? "" : template)
    .replace(/\{(\w+)\}/g, (field, name) => (values && name in values ? String(values[name]) : field));
}

// Decodes the payload's picture (section "image") into owner.image (an ImageBitmap, or null when there is
// none) once per payload, then calls `redraw`; for a payload already seen it does nothing, so a rerun with the
// same payload is drawn once. Shared by the components that draw a map over the photo.
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
  if (!window.__vitvizPayloads) window.__vitvizPayloads = new Map();
  return window.__vitvizPayloads;
}

function vvRemember(payload) {
  const store = vvStore();
  if (store.has(payload.header.id)) return;
  store.set(payload.header.id, payload);
  while (store.size > VV_KEEP) store.delete(store.keys().next().value);
  window.dispatchEvent(new CustomEvent("vitviz-payload", { detail: payload.header.id }));
}

// Calls back with the payload `id` now, or as soon as its carrier has delivered it.
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

// A 256-entry RGB lookup table from colour stops [[t, r, g, b], ...] (vitviz/export/colours.py): the
// server figure's own colour scale, interpolated linearly in RGB as Plotly does.
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

