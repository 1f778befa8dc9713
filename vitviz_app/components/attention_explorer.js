// Attention explorer: the Attention page's one set of controls. Hovering a patch previews it as the query (leaving
// the map goes back to the committed one); layer, head and the layers × heads grid follow with no server round
// trip. A click on a patch, a prefix-token button or a tile, or a new layer or head, commits the view to the page,
// which follows it (heading, table, downloads, URL).
//
// Data (attention_explorer.py): payload, committed {token, layer, head, rows}, colours, text. The attention rows
// come from the payload carrier; committed.rows (base64, same container) adds the committed query's per-head
// rows when the payload does not hold them; text.prefix_labels names the prefix tokens. Test probe: Explorer.

const VV_FUSIONS = ["mean", "max", "min"];
const VV_MAP_SIDE = 420; // css px of the map's longer side

const VV_HTML = `
<div class="vv-controls vz-controls">
  <label><span class="vv-layer-label"></span> <input class="vv-layer vz-slider" type="range" min="0" step="1"> <b class="vv-layer-value"></b></label>
  <label><span class="vv-head-label"></span> <select class="vv-head"></select></label>
  <span class="vv-prefix"></span>
</div>
<div class="vv-body">
  <div class="vv-main">
    <div class="vv-map-title vz-title"></div>
    <div class="vv-stage vz-stage"><canvas class="vv-map vz-map"></canvas><div class="vv-tip vz-tip"></div></div>
    <div class="vv-legend vz-legend"><canvas class="vv-scale" width="160" height="10"></canvas><span class="vv-scale-text"></span></div>
    <div class="vv-shares vz-note"></div>
  </div>
  <div class="vv-side">
    <div class="vv-grid-title"></div>
    <label class="vv-shared-label"><input class="vv-shared" type="checkbox"> <span class="vv-shared-text"></span></label>
    <div class="vv-stage vz-stage"><canvas class="vv-grid"></canvas><div class="vv-tip vz-tip"></div></div>
  </div>
</div>
<div class="vv-status"></div>`;

class VVExplorer extends VVView {
  constructor(root) {
    super(root);
    const box = this.vvElements("vv-explorer vz-view", VV_HTML, "vv-", ["layer", "layer-label", "layer-value", "head", "head-label",
      "prefix", "map-title", "map", "legend", "scale", "scale-text", "shares", "grid-title", "grid", "status", "shared",
      "shared-text"]);
    this.tips = box.querySelectorAll(".vv-tip");
    this.extra = null;
    this.state = { query: 0, layer: 0, head: "mean" };
    // dragging the layer previews it; letting go commits it (one rerun per choice, not per step)
    this.el.layer.addEventListener("input", () => { this.state.layer = +this.el.layer.value; this.draw(); });
    this.el.layer.addEventListener("change", () => { this.state.layer = +this.el.layer.value; this.commitAndDraw(); });
    this.el.head.addEventListener("change", () => { this.state.head = this.el.head.value; this.commitAndDraw(); });
    this.el.shared.addEventListener("change", () => this.draw());
    this.el.map.addEventListener("pointermove", (e) => this.onMapMove(e));
    this.el.map.addEventListener("pointerleave", () => this.onMapLeave());
    this.el.map.addEventListener("click", (e) => this.onMapClick(e));
    this.el.grid.addEventListener("pointermove", (e) => this.onGridMove(e));
    this.el.grid.addEventListener("pointerleave", () => vvHideTip(this.tips[1]));
    this.el.grid.addEventListener("click", (e) => this.onGridClick(e));
  }

  // ---- data -------------------------------------------------------------------------------------------
  committed(c) { // the page's query, layer or head changed: start from it
    this.extra = c.rows ? vvDecode(c.rows) : null;
    this.state = { query: c.token, layer: c.layer, head: String(c.head) };
    this.pending = null;
  }

  received() { this.el.status.textContent = this.t("loading"); }

  setPayload(payload) {
    const h = payload.header;
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
    const el = this.el;
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
      b.type = "button"; b.className = "vv-token vz-chip"; b.dataset.token = String(token);
      b.textContent = this.prefixLabel(name);
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
    for (let h = 0; h < H; h++) out.set(vvRow(s, "heads", base + h, N), h * N);
    return out;
  }

  row(query, layer, head) { // Float32Array(N) or null
    const N = this.N, H = this.H;
    if (VV_FUSIONS.includes(head)) {
      const i = this.fusedIndex.get(query);
      if (i !== undefined) return vvRow(this.payload.sections, "fused", (i * this.L + layer) * 3 + VV_FUSIONS.indexOf(head), N);
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

  // ---- names ------------------------------------------------------------------------------------------
  prefixLabel(name) { return (this.data.text.prefix_labels || {})[name] || name; }

  tokenName(token) {
    if (token < this.P) return this.prefixLabel(this.payload.header.prefix_names[token]);
    const p = token - this.P;
    return this.t("patch", { row: Math.floor(p / this.gw), col: p % this.gw });
  }

  headName(head) { return VV_FUSIONS.includes(head) ? this.t("fusion_" + head) : this.t("head", { head }); }

  // ---- events -----------------------------------------------------------------------------------------
  onMapMove(event) {
    if (!this.payload) return;
    const cell = vvCellAt(this.el.map, event, this.gh, this.gw);
    if (!cell) return;
    const token = this.P + cell[0] * this.gw + cell[1];
    if (!event.shiftKey && token !== this.state.query) {
      this.state.query = token;
      this.draw();
    }
    const v = this.drawn && this.drawn.values ? this.drawn.values[token] : null;
    let text = this.t("tip_cell", { row: cell[0], col: cell[1] });
    if (v !== null && v !== undefined) {
      text += event.shiftKey ? this.t("tip_from", { token: this.tokenName(this.state.query), value: v.toPrecision(3) })
        : this.t("tip_self", { value: v.toPrecision(3) });
    }
    vvShowTip(this.tips[0], event, text + (event.shiftKey ? "" : this.t("tip_hint")));
  }

  onMapLeave() { // the preview ends: back to the committed query (or to the one a click is committing)
    vvHideTip(this.tips[0]);
    if (!this.payload) return;
    const query = this.pending !== null && this.pending !== undefined ? this.pending : this.data.committed.token;
    if (this.state.query !== query) { this.state.query = query; this.draw(); }
  }

  onMapClick(event) {
    if (!this.payload) return;
    const cell = vvCellAt(this.el.map, event, this.gh, this.gw);
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
    if (!hit) { vvHideTip(this.tips[1]); return; }
    const values = this.gridValues && this.gridValues.get(`${hit.layer}:${hit.head}`);
    const v = values ? values[this.P + hit.r * this.gw + hit.c] : null;
    vvShowTip(this.tips[1], event, this.t("grid_tip", { layer: hit.layer, head: this.headName(hit.head), row: hit.r, col: hit.c }) +
      (v === null || v === undefined ? "" : `: ${v.toPrecision(3)}`) + this.t("grid_hint"));
  }

  onGridClick(event) {
    const hit = this.gridCell(event);
    if (!hit) return;
    this.state.layer = hit.layer; this.state.head = String(hit.head);
    this.commitAndDraw();
  }

  commitAndDraw() { // the commit first: the server's rerun starts while the map is drawn here
    const q = this.state.query, P = this.P;
    const value = { layer: this.state.layer, head: this.state.head, at: Date.now() };
    if (q < P) value.query = this.payload.header.prefix_names[q];
    else Object.assign(value, { query: "patch", row: Math.floor((q - P) / this.gw), col: (q - P) % this.gw });
    this.pending = q;
    this.send(value);
    this.draw();
    this.el.status.textContent = this.t("committing", { token: this.tokenName(q) });
  }

  // ---- drawing ----------------------------------------------------------------------------------------
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
    for (const b of el.prefix.querySelectorAll("button")) b.classList.toggle("vz-on", +b.dataset.token === query);
    const values = this.row(query, layer, head);
    this.drawMap(values);
    this.drawGrid();
    this.drawCount += 1;
    const tier = this.payload.header.tier;
    el.status.textContent = this.t("status_" + tier);
    vvProbe("Explorer", () => ({
      draw_count: this.drawCount, query, layer, head, tier, payload: this.payload.header.id,
      grid: [this.gh, this.gw], num_prefix: this.P, committed: this.data.committed,
      payload_bytes: this.payload.nbytes, values: values ? Array.from(values) : null,
      shares: values && this.drawnShares ? this.drawnShares.slice() : null,
      grid_query: this.gridQuery, grid_columns: this.gridGeom ? this.gridGeom.cols.slice() : [],
      tiny_tiles: this.tinyTiles || [], shared_scale: this.el.shared.checked, pending: this.pending,
      grid_geometry: this.gridGeom ? { left: this.gridGeom.left, top: this.gridGeom.top, pitch_x: this.gridGeom.pitchX,
        pitch_y: this.gridGeom.pitchY, width: this.gridGeom.width, height: this.gridGeom.height } : null,
      drawn_at: performance.now(), colour_ends: [Array.from(this.lut.slice(0, 3)), Array.from(this.lut.slice(765))],
    }));
  }

  drawMap(values) {
    const el = this.el, gh = this.gh, gw = this.gw, info = this.payload.header.image;
    const [w, h] = vvFit(info ? info.width / info.height : gw / gh, VV_MAP_SIDE);
    const ctx = vvCanvas(el.map, w, h);
    if (this.image) ctx.drawImage(this.image, 0, 0, w, h);
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
    this.cellCanvas = vvDrawMap(ctx, values, gh, gw, this.lut, lo, hi, [0, 0, w, h],
      { offset: this.P, alpha: this.image ? 0.62 : 1, scratch: this.cellCanvas });
    if (query >= this.P) { // outline the query patch
      const p = query - this.P, cw = w / gw, ch = h / gh, x = (p % gw) * cw, y = Math.floor(p / gw) * ch;
      ctx.lineWidth = 3; ctx.strokeStyle = "#000"; ctx.strokeRect(x, y, cw, ch);
      ctx.lineWidth = 1.5; ctx.strokeStyle = "#fff"; ctx.strokeRect(x, y, cw, ch);
    }
    vvDrawScale(el.scale, this.lut, el["scale-text"], ` ${lo.toPrecision(2)} … ${hi.toPrecision(3)}`);
    this.drawnShares = this.shares(values, this.state.head);
    const parts = this.payload.header.prefix_names.map((name, i) =>
      this.t("share", { name: this.prefixLabel(name), percent: (100 * this.drawnShares[i]).toFixed(1) }));
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

  drawGrid() {
    const { query } = this.state;
    this.el["shared-text"].textContent = this.t("shared_scale");
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
    const ctx = vvCanvas(this.el.grid, width, height);
    const tiles = new ImageData(C * (gw + 1), L * (gh + 1));
    this.gridValues = new Map();
    for (let l = 0; l < L; l++) {
      for (let j = 0; j < C; j++) {
        const v = this.row(gridQuery, l, cols[j]);
        if (v) this.gridValues.set(`${l}:${cols[j]}`, v);
      }
    }
    // one scale for every tile (0 … the grid's largest patch value), or each tile on its own
    const shared = this.el.shared.checked;
    let highest = 0;
    for (const v of this.gridValues.values()) highest = Math.max(highest, this.patchRange(v)[1]);
    const tiny = [], uniform = 1 / (gh * gw);
    for (let l = 0; l < L; l++) {
      for (let j = 0; j < C; j++) {
        const v = this.gridValues.get(`${l}:${cols[j]}`);
        if (!v) continue;
        const [lo, hi] = shared ? [0, highest || 1] : this.patchRange(v);
        if (!shared && hi < uniform) tiny.push([l, j, hi]); // stretched from almost nothing: said on the tile
        vvPaint(tiles, v, gh, gw, this.lut, lo, hi, j * (gw + 1), l * (gh + 1), this.P);
      }
    }
    this.tinyTiles = tiny.map(([l, j, hi]) => [l, cols[j], hi]);
    this.tileCanvas = vvPixels(tiles, this.tileCanvas);
    for (let l = 0; l < L; l++) {
      for (let j = 0; j < C; j++) {
        vvBlit(ctx, this.tileCanvas, left + j * pitchX, top + l * pitchY, gw * cell, gh * cell, 1,
          [j * (gw + 1), l * (gh + 1), gw, gh]);
      }
    }
    ctx.font = "9px sans-serif"; ctx.textAlign = "left";
    for (const [l, j, hi] of tiny) { // "max 0.0003" across the tile's foot
      const x = left + j * pitchX, y = top + l * pitchY + gh * cell;
      ctx.fillStyle = "rgba(0,0,0,0.6)"; ctx.fillRect(x, y - 11, gw * cell, 11);
      ctx.fillStyle = "#fff"; ctx.fillText(this.t("tile_max", { value: hi.toPrecision(1) }), x + 2, y - 2);
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

export default vvMount(VVExplorer);
