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

// Decodes the payload's picture (section "image") once per payload into owner.image (an ImageBitmap, or
// null when there is none); shared by the components that draw a map over the photo.
function vvLoadImage(owner) {
  const s = owner.payload.sections.image, info = owner.payload.header.image;
  if (!s || !info) { owner.image = null; return Promise.resolve(); }
  if (owner.imageFor === owner.payload.header.id) return Promise.resolve();
  owner.imageFor = owner.payload.header.id;
  return createImageBitmap(new Blob([s], { type: info.mime })).then((bitmap) => { owner.image = bitmap; })
    .catch(() => { owner.image = null; });
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

// The payload's id, read from its header without copying the payload (null when `data` is not one).
function vvPeekId(data) {
  const bytes = vvBytes(data);
  if (!bytes || bytes.length < 8 || VV_MAGIC.some((b, i) => bytes[i] !== b)) return null;
  const length = new DataView(bytes.buffer, bytes.byteOffset, 8).getUint32(4, true);
  try { return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))).id; } catch (e) { return null; }
}

function vvDecode(data) {
  const bytes = vvBytes(data);
  if (!bytes || bytes.length < 8 || VV_MAGIC.some((b, i) => bytes[i] !== b)) return null;
  // copy once so every typed-array view below is aligned to the start of its own buffer
  const buffer = bytes.slice().buffer;
  const length = new DataView(buffer).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, length)));
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

