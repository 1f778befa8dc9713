// Attention explorer: hover a patch to make it the query; layer, head and the layers × heads grid follow
// with no server round trip. A click (or a prefix-token button) commits the query to the page.
//
// Data (from attention_explorer.py): {payload, committed: {token, layer, head}, extra, labels, title}.
// The attention rows come from the payload carrier (payload.js); `extra` (base64, same container) adds the
// committed query's per-head rows when the payload does not hold them. What is drawn is exposed on
// window.__vitvizExplorer for tests and benchmarks.

const VV_FUSIONS = ["mean", "max", "min"];
// Colours: the stops of the server figures' scale (vitviz.figures.MAP_SCALE), sent by attention_explorer.py.
const VV_MAP_SIDE = 420; // css px of the map's longer side

const VV_HTML = `
<div class="vv-explorer">
  <div class="vv-controls">
    <label><span class="vv-layer-label"></span> <input class="vv-layer" type="range" min="0" step="1"> <b class="vv-layer-value"></b></label>
    <label><span class="vv-head-label"></span> <select class="vv-head"></select></label>
    <span class="vv-prefix"></span>
  </div>
  <div class="vv-body">
    <div class="vv-main">
      <div class="vv-map-title"></div>
      <div class="vv-stage"><canvas class="vv-map"></canvas><div class="vv-tip"></div></div>
      <div class="vv-legend"><canvas class="vv-scale" width="160" height="10"></canvas><span class="vv-scale-text"></span></div>
      <div class="vv-shares"></div>
    </div>
    <div class="vv-side">
      <div class="vv-grid-title"></div>
      <div class="vv-stage"><canvas class="vv-grid"></canvas><div class="vv-tip"></div></div>
    </div>
  </div>
  <div class="vv-status"></div>
</div>`;

function vvEl(root, selector) { return root.querySelector(selector); }

class VVExplorer {
  constructor(root) {
    this.root = root;
    const holder = document.createElement("div");
    holder.innerHTML = VV_HTML;
    root.appendChild(holder.firstElementChild);
    this.el = {};
    for (const name of ["layer", "layer-label", "layer-value", "head", "head-label", "prefix", "map-title", "map", "legend", "scale",
                        "scale-text", "shares", "grid-title", "grid", "status"]) {
      this.el[name] = vvEl(root, ".vv-" + name);
    }
    this.tips = root.querySelectorAll(".vv-tip");
    this.payload = null;
    this.extra = null;
    this.committedSeen = null;
    this.state = { query: 0, layer: 0, head: "mean" };
    this.drawCount = 0;
    this.waiting = () => {};
    this.el.layer.addEventListener("input", () => { this.state.layer = +this.el.layer.value; this.draw(); });
    this.el.head.addEventListener("change", () => { this.state.head = this.el.head.value; this.draw(); });
    this.el.map.addEventListener("pointermove", (e) => this.onMapMove(e));
    this.el.map.addEventListener("pointerleave", () => this.hideTip(0));
    this.el.map.addEventListener("click", (e) => this.onMapClick(e));
    this.el.grid.addEventListener("pointermove", (e) => this.onGridMove(e));
    this.el.grid.addEventListener("pointerleave", () => this.hideTip(1));
    this.el.grid.addEventListener("click", (e) => this.onGridClick(e));
  }

  // ---- data -------------------------------------------------------------------------------------------
  update(data, commit) {
    this.commit = commit;
    // Streamlit also calls back with unchanged data (e.g. after our own commit): nothing to draw again
    const signature = JSON.stringify(data);
    if (signature === this.signature && this.payload) return;
    this.signature = signature;
    this.data = data;
    if (data.colours && data.colours !== this.colours) { this.colours = data.colours; this.lut = vvLut(data.colours); }
    this.extra = data.extra ? vvDecode(data.extra) : null;
    const c = data.committed;
    const key = JSON.stringify(c);
    if (key !== this.committedSeen) { // the page's query, layer or head changed: start from it
      this.committedSeen = key;
      this.state = { query: c.token, layer: c.layer, head: String(c.head) };
    }
    this.waiting();
    this.el.status.textContent = this.t("loading");
    this.waiting = vvWhenPayload(data.payload, (payload) => this.setPayload(payload));
  }

  setPayload(payload) {
    const h = payload.header;
    this.payload = payload;
    this.L = h.num_layers; this.H = h.num_heads; this.N = h.num_tokens;
    [this.gh, this.gw] = h.grid; this.P = h.prefix_names.length;
    this.headIndex = new Map(h.head_queries.map((q, i) => [q, [payload.sections, i]]));
    this.fusedIndex = new Map(h.fused_queries.map((q, i) => [q, i]));
    if (this.extra) this.extra.header.head_queries.forEach((q, i) => this.headIndex.set(q, [this.extra.sections, i]));
    this.buildControls();
    vvLoadImage(this, () => this.draw()); // a new payload's photo: drawn again once it is decoded
    this.draw();
  }

  buildControls() {
    const el = this.el, labels = this.data.labels || {};
    el["layer-label"].textContent = this.t("layer"); el["head-label"].textContent = this.t("head_label");
    el.layer.max = String(this.L - 1);
    const heads = VV_FUSIONS.concat(Array.from({ length: this.H }, (_, i) => String(i)));
    if (el.head.options.length !== heads.length) {
      el.head.innerHTML = "";
      for (const h of heads) {
        const o = document.createElement("option");
        o.value = h; o.textContent = VV_FUSIONS.includes(h) ? this.t("option_" + h) : this.t("option_head", { head: h });
        el.head.appendChild(o);
      }
    }
    el.prefix.innerHTML = "";
    this.payload.header.prefix_names.forEach((name, token) => {
      const b = document.createElement("button");
      b.type = "button"; b.className = "vv-token"; b.dataset.token = String(token);
      b.textContent = labels[name] || name;
      b.title = this.t("token_button");
      b.addEventListener("click", () => { this.state.query = token; this.commitAndDraw(); });
      el.prefix.appendChild(b);
    });
  }

  // ---- rows -------------------------------------------------------------------------------------------
  headRows(query, layer) { // (H × N) Float32Array rows, or null
    const hit = this.headIndex.get(query);
    if (!hit) return null;
    const [s, i] = hit, N = this.N, H = this.H;
    const base = (i * this.L + layer) * H;
    const out = new Float32Array(H * N);
    for (let h = 0; h < H; h++) {
      const lo = s.heads_lo[base + h], step = s.heads_step[base + h], off = (base + h) * N;
      for (let k = 0; k < N; k++) out[h * N + k] = lo + s.heads[off + k] * step;
    }
    return out;
  }

  row(query, layer, head) { // Float32Array(N) or null
    const N = this.N, H = this.H;
    if (VV_FUSIONS.includes(head)) {
      const f = VV_FUSIONS.indexOf(head), i = this.fusedIndex.get(query);
      if (i !== undefined) {
        const s = this.payload.sections, r = (i * this.L + layer) * 3 + f;
        const lo = s.fused_lo[r], step = s.fused_step[r], out = new Float32Array(N);
        for (let k = 0; k < N; k++) out[k] = lo + s.fused[r * N + k] * step;
        return out;
      }
      const rows = this.headRows(query, layer);
      if (!rows) return null;
      const out = new Float32Array(N);
      if (head === "mean") {
        for (let h = 0; h < H; h++) for (let k = 0; k < N; k++) out[k] += rows[h * N + k];
        for (let k = 0; k < N; k++) out[k] /= H;
      } else {
        const pick = head === "max" ? Math.max : Math.min;
        out.set(rows.subarray(0, N));
        for (let h = 1; h < H; h++) for (let k = 0; k < N; k++) out[k] = pick(out[k], rows[h * N + k]);
      }
      return out;
    }
    const rows = this.headRows(query, layer);
    return rows ? rows.slice(+head * N, (+head + 1) * N) : null;
  }

  // ---- geometry ---------------------------------------------------------------------------------------
  cellAt(canvas, event, rows, cols) {
    const box = canvas.getBoundingClientRect();
    const x = (event.clientX - box.left) / box.width, y = (event.clientY - box.top) / box.height;
    if (x < 0 || y < 0 || x >= 1 || y >= 1) return null;
    return [Math.floor(y * rows), Math.floor(x * cols)];
  }

  tokenName(token) {
    if (token < this.P) {
      const name = this.payload.header.prefix_names[token];
      return (this.data.labels || {})[name] || name;
    }
    const p = token - this.P;
    return this.t("patch", { row: Math.floor(p / this.gw), col: p % this.gw });
  }

  headName(head) { return VV_FUSIONS.includes(head) ? this.t("fusion_" + head) : this.t("head", { head }); }

  t(name, fields) { return vvFormat((this.data.text || {})[name] || name, fields || {}); }

  // ---- events -----------------------------------------------------------------------------------------
  onMapMove(event) {
    if (!this.payload) return;
    const cell = this.cellAt(this.el.map, event, this.gh, this.gw);
    if (!cell) return;
    const token = this.P + cell[0] * this.gw + cell[1];
    if (!event.shiftKey && token !== this.state.query) {
      this.state.query = token;
      this.draw();
    }
    const v = this.drawn && this.drawn.values ? this.drawn.values[token] : null;
    const at = { row: cell[0], col: cell[1] };
    let text = this.t("tip_cell", at);
    if (v !== null && v !== undefined) {
      text += event.shiftKey ? this.t("tip_from", { token: this.tokenName(this.state.query), value: v.toPrecision(3) })
        : this.t("tip_self", { value: v.toPrecision(3) });
    }
    this.showTip(0, event, text + (event.shiftKey ? "" : this.t("tip_hint")));
  }

  onMapClick(event) {
    if (!this.payload) return;
    const cell = this.cellAt(this.el.map, event, this.gh, this.gw);
    if (!cell) return;
    this.state.query = this.P + cell[0] * this.gw + cell[1];
    this.commitAndDraw();
  }

  gridCell(event) {
    const g = this.gridGeom;
    if (!g) return null;
    const box = this.el.grid.getBoundingClientRect();
    const x = (event.clientX - box.left) * (g.width / box.width) - g.left;
    const y = (event.clientY - box.top) * (g.height / box.height) - g.top;
    const col = Math.floor(x / g.pitchX), row = Math.floor(y / g.pitchY);
    if (x < 0 || y < 0 || col >= g.cols.length || row >= this.L) return null;
    const cx = Math.floor((x - col * g.pitchX) / g.cell), cy = Math.floor((y - row * g.pitchY) / g.cell);
    if (cx >= this.gw || cy >= this.gh) return null;
    return { layer: row, head: g.cols[col], r: cy, c: cx };
  }

  onGridMove(event) {
    const hit = this.gridCell(event);
    if (!hit) { this.hideTip(1); return; }
    const values = this.gridValues && this.gridValues.get(`${hit.layer}:${hit.head}`);
    const v = values ? values[this.P + hit.r * this.gw + hit.c] : null;
    this.showTip(1, event, this.t("grid_tip", { layer: hit.layer, head: this.headName(hit.head), row: hit.r, col: hit.c }) +
      (v === null || v === undefined ? "" : `: ${v.toPrecision(3)}`) + this.t("grid_hint"));
  }

  onGridClick(event) {
    const hit = this.gridCell(event);
    if (!hit) return;
    this.state.layer = hit.layer; this.state.head = String(hit.head);
    this.draw();
  }

  commitAndDraw() { // the commit first: the server's rerun starts while the map is drawn here
    this.sendCommit();
    this.draw();
    this.el.status.textContent = this.t("committing", { token: this.tokenName(this.state.query) });
  }

  sendCommit() {
    const q = this.state.query, P = this.P;
    const value = { layer: this.state.layer, head: this.state.head, at: Date.now() };
    if (q < P) value.query = this.payload.header.prefix_names[q];
    else Object.assign(value, { query: "patch", row: Math.floor((q - P) / this.gw), col: (q - P) % this.gw });
    this.commit(value);
  }

  showTip(i, event, text) {
    const tip = this.tips[i], stage = tip.parentElement.getBoundingClientRect();
    tip.textContent = text;
    tip.style.display = "block";
    tip.style.left = `${Math.min(event.clientX - stage.left + 12, stage.width - 10)}px`;
    tip.style.top = `${event.clientY - stage.top + 14}px`;
  }

  hideTip(i) { this.tips[i].style.display = "none"; }

  // ---- drawing ----------------------------------------------------------------------------------------
  paintCells(values, lo, hi, width, height, target, x0, y0) { // write gh×gw cells into an ImageData
    const span = hi > lo ? hi - lo : 1;
    for (let r = 0; r < this.gh; r++) {
      for (let c = 0; c < this.gw; c++) {
        const v = values[this.P + r * this.gw + c];
        const k = Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255))) * 3;
        const at = ((y0 + r) * width + x0 + c) * 4;
        target[at] = this.lut[k]; target[at + 1] = this.lut[k + 1]; target[at + 2] = this.lut[k + 2]; target[at + 3] = 255;
      }
    }
  }

  patchRange(values) {
    let lo = Infinity, hi = -Infinity;
    for (let k = this.P; k < this.N; k++) { lo = Math.min(lo, values[k]); hi = Math.max(hi, values[k]); }
    return [Math.min(0, lo), hi];
  }

  draw() {
    if (!this.payload) return;
    const { query, layer, head } = this.state;
    const el = this.el;
    el.layer.value = String(layer);
    el["layer-value"].textContent = String(layer);
    el.head.value = head;
    for (const b of el.prefix.querySelectorAll("button")) b.classList.toggle("vv-on", +b.dataset.token === query);
    const values = this.row(query, layer, head);
    this.drawMap(values);
    this.drawGrid();
    this.drawCount += 1;
    const tier = this.payload.header.tier;
    el.status.textContent = this.statusText(tier);
    window.__vitvizExplorer = {
      drawCount: this.drawCount, query, layer, head, tier, payload: this.payload.header.id,
      grid: [this.gh, this.gw], numPrefix: this.P, committed: this.data.committed,
      payloadBytes: this.payload.nbytes, values: values ? Array.from(values) : null,
      shares: values && this.drawnShares ? this.drawnShares.slice() : null,
      gridQuery: this.gridQuery, gridColumns: this.gridGeom ? this.gridGeom.cols.slice() : [],
      drawnAt: performance.now(), colourEnds: [Array.from(this.lut.slice(0, 3)), Array.from(this.lut.slice(765))],
    };
  }

  statusText(tier) {
    return this.t("status_" + tier);
  }

  drawMap(values) {
    const el = this.el, gh = this.gh, gw = this.gw;
    const info = this.payload.header.image;
    const aspect = info ? info.width / info.height : gw / gh;
    const w = aspect >= 1 ? VV_MAP_SIDE : Math.round(VV_MAP_SIDE * aspect);
    const h = aspect >= 1 ? Math.round(VV_MAP_SIDE / aspect) : VV_MAP_SIDE;
    const ratio = window.devicePixelRatio || 1;
    const canvas = el.map;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
    canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (this.image) { ctx.globalAlpha = 1; ctx.drawImage(this.image, 0, 0, w, h); }
    const { query, layer, head } = this.state;
    el["map-title"].textContent = this.t("map_title", { token: this.tokenName(query), layer, head: this.headName(head) });
    this.drawn = { values };
    if (!values) {
      ctx.fillStyle = "rgba(255,255,255,0.75)"; ctx.fillRect(0, 0, w, h);
      ctx.fillStyle = "#222"; ctx.font = "14px sans-serif"; ctx.textAlign = "center";
      ctx.fillText(this.t("missing_what", { head: this.headName(head), token: this.tokenName(query) }), w / 2, h / 2 - 10);
      ctx.fillText(this.t("missing_hint"), w / 2, h / 2 + 12);
      el.shares.textContent = "";
      el["scale-text"].textContent = "";
      return;
    }
    const [lo, hi] = this.patchRange(values);
    const cells = new ImageData(gw, gh);
    this.paintCells(values, lo, hi, gw, gh, cells.data, 0, 0);
    if (!this.cellCanvas) this.cellCanvas = document.createElement("canvas");
    this.cellCanvas.width = gw; this.cellCanvas.height = gh;
    this.cellCanvas.getContext("2d").putImageData(cells, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.globalAlpha = this.image ? 0.62 : 1;
    ctx.drawImage(this.cellCanvas, 0, 0, w, h);
    ctx.globalAlpha = 1;
    if (query >= this.P) { // outline the query patch
      const p = query - this.P, cw = w / gw, ch = h / gh, x = (p % gw) * cw, y = Math.floor(p / gw) * ch;
      ctx.lineWidth = 3; ctx.strokeStyle = "#000"; ctx.strokeRect(x, y, cw, ch);
      ctx.lineWidth = 1.5; ctx.strokeStyle = "#fff"; ctx.strokeRect(x, y, cw, ch);
    }
    this.drawScale(lo, hi);
    this.drawnShares = this.shares(values, this.state.head);
    const parts = this.payload.header.prefix_names.map((name, i) =>
      this.t("share", { name: (this.data.labels || {})[name] || name, percent: (100 * this.drawnShares[i]).toFixed(1) }));
    parts.push(this.t("share_patches", { percent: (100 * this.drawnShares[this.P]).toFixed(1) }));
    el.shares.textContent = this.t("shares", { shares: parts.join(" · ") });
  }

  // Each prefix token's and all patches' share of the row, as the page's (AttentionMap.shares) gives them.
  // One head or the head mean sums to 1: the patches get 1 − the prefix, so that 196 quantisation errors do
  // not add up (they moved the patches' share by 0.3 %); a max or min over heads is normalised by its total.
  shares(values, head) {
    const P = this.P, prefix = Array.from(values.slice(0, P));
    const prefixSum = prefix.reduce((a, b) => a + b, 0);
    if (head !== "max" && head !== "min") return prefix.concat([1 - prefixSum]);
    let total = 0;
    for (let k = 0; k < this.N; k++) total += values[k];
    return total > 0 ? prefix.concat([total - prefixSum]).map((v) => v / total) : prefix.concat([NaN]);
  }

  drawScale(lo, hi) {
    const c = this.el.scale, ctx = c.getContext("2d"), img = ctx.createImageData(c.width, 1);
    for (let x = 0; x < c.width; x++) {
      const k = Math.round((x / (c.width - 1)) * 255) * 3;
      img.data.set([this.lut[k], this.lut[k + 1], this.lut[k + 2], 255], x * 4);
    }
    for (let y = 0; y < c.height; y++) ctx.putImageData(img, 0, y);
    this.el["scale-text"].textContent = ` ${lo.toPrecision(2)} … ${hi.toPrecision(3)}`;
  }

  drawGrid() {
    const { query } = this.state;
    let cols = null, gridQuery = query;
    const committed = this.data.committed.token;
    if (this.headIndex.has(query)) cols = Array.from({ length: this.H }, (_, i) => String(i));
    else if (this.fusedIndex.has(query)) cols = VV_FUSIONS.slice();
    else if (this.headIndex.has(committed)) { cols = Array.from({ length: this.H }, (_, i) => String(i)); gridQuery = committed; }
    this.gridQuery = gridQuery;
    const title = this.el["grid-title"];
    if (!cols) { title.textContent = ""; this.el.grid.width = 0; this.gridGeom = null; return; }
    title.textContent = this.t(cols[0] === "mean" ? "grid_title_fused" : "grid_title_heads", { token: this.tokenName(gridQuery) });
    const gh = this.gh, gw = this.gw, L = this.L, C = cols.length;
    const cell = Math.max(1, Math.floor(Math.min(72, 380 / C) / Math.max(gh, gw)));
    const gap = 3, left = 22, top = 14;
    const pitchX = gw * cell + gap, pitchY = gh * cell + gap;
    const width = left + C * pitchX, height = top + L * pitchY;
    const ratio = window.devicePixelRatio || 1, canvas = this.el.grid;
    canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const tiles = new ImageData(C * (gw + 1), L * (gh + 1));
    this.gridValues = new Map();
    for (let l = 0; l < L; l++) {
      for (let j = 0; j < C; j++) {
        const v = this.row(gridQuery, l, cols[j]);
        if (!v) continue;
        this.gridValues.set(`${l}:${cols[j]}`, v);
        const [lo, hi] = this.patchRange(v);
        this.paintCells(v, lo, hi, C * (gw + 1), L * (gh + 1), tiles.data, j * (gw + 1), l * (gh + 1));
      }
    }
    if (!this.tileCanvas) this.tileCanvas = document.createElement("canvas");
    this.tileCanvas.width = tiles.width; this.tileCanvas.height = tiles.height;
    this.tileCanvas.getContext("2d").putImageData(tiles, 0, 0);
    ctx.imageSmoothingEnabled = false;
    for (let l = 0; l < L; l++) {
      for (let j = 0; j < C; j++) {
        ctx.drawImage(this.tileCanvas, j * (gw + 1), l * (gh + 1), gw, gh,
          left + j * pitchX, top + l * pitchY, gw * cell, gh * cell);
      }
    }
    ctx.fillStyle = "#666"; ctx.font = "10px sans-serif"; ctx.textAlign = "center";
    cols.forEach((c, j) => ctx.fillText(c, left + j * pitchX + (gw * cell) / 2, 10));
    ctx.textAlign = "right";
    for (let l = 0; l < L; l++) ctx.fillText(String(l), left - 4, top + l * pitchY + (gh * cell) / 2 + 3);
    const j = cols.indexOf(this.state.head);
    if (j >= 0) {
      ctx.lineWidth = 2; ctx.strokeStyle = "#e4572e";
      ctx.strokeRect(left + j * pitchX - 1, top + this.state.layer * pitchY - 1, gw * cell + 2, gh * cell + 2);
    }
    this.gridGeom = { left, top, pitchX, pitchY, cell, cols, width, height };
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (!parentElement.__vitvizExplorer) parentElement.__vitvizExplorer = new VVExplorer(parentElement);
  parentElement.__vitvizExplorer.update(data, (value) => setTriggerValue("commit", value));
  return () => { parentElement.__vitvizExplorer.waiting(); };
}
