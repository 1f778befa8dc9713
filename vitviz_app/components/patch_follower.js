// Patch follower ("How a ViT works", step 1): point at a patch and its numbers from the later steps (its
// pixels, flattened vector, embedding, attention row, token length per block) are redrawn at once, with no
// server round trip; a click commits the patch to the page, whose steps then follow it in full.
//
// The same component draws each later step's view of the committed patch (VFStep: step 2's flattened vector,
// step 3's token, step 5's attention map, step 6's token lengths) from the same payload, so a commit sends the
// page only the committed patch and a few texts, not figures.
//
// Data (patch_follower.py): payload, committed {row, col, url?} (a step view: {row, col, step}), colours, text
// {templates}; the follower writes `url`, the page's view, into the address bar (lib.js: VVView.update). The numbers come from the payload carrier (vitviz/export/walkthrough.py). Test probes: Follow,
// Step_<step>.

const VF_SIDE = 300; // css px of the image's longer side
const VF_CHANNELS = ["#d62728", "#2ca02c", "#1f77b4"]; // as the page's step-2 figure: red, green, blue

const VF_HTML = `<div class="vf-stage vz-stage"><canvas class="vf-image vz-map"></canvas><div class="vf-tip vz-tip"></div></div>
  <div class="vf-panel"><div class="vf-title"></div>
    <div class="vf-row"><canvas class="vf-patch"></canvas><div><div class="vf-label vf-pixels-label"></div><canvas class="vf-pixels"></canvas></div></div>
    <div class="vf-label vf-embedding-label"></div><canvas class="vf-embedding"></canvas>
    <div class="vf-row"><div><div class="vf-label vf-attention-label"></div><canvas class="vf-attention"></canvas></div>
    <div><div class="vf-label vf-norms-label"></div><canvas class="vf-norms"></canvas></div></div></div>`;

function vfRange(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return hi > lo ? [lo, hi] : [lo - 1, hi + 1];
}

// A line (or bar) chart of `series` [{values, colour, dash}] into a canvas of w × h css px.
function vfChart(canvas, w, h, series, bars) {
  const ctx = vvCanvas(canvas, w, h), pad = 4;
  const [lo, hi] = vfRange(series.flatMap((s) => Array.from(s.values)).concat(bars ? [0] : []));
  const y = (v) => pad + (h - 2 * pad) * (1 - (v - lo) / (hi - lo));
  ctx.strokeStyle = "#bbb"; ctx.lineWidth = 1;
  if (lo < 0 && hi > 0) { ctx.beginPath(); ctx.moveTo(0, y(0)); ctx.lineTo(w, y(0)); ctx.stroke(); }
  for (const s of series) {
    const n = s.values.length, x = (i) => pad + ((w - 2 * pad) * i) / Math.max(1, n - 1);
    ctx.strokeStyle = s.colour; ctx.fillStyle = s.colour; ctx.setLineDash(s.dash ? [3, 3] : []);
    if (bars) {
      const bw = Math.max(1, (w - 2 * pad) / n);
      for (let i = 0; i < n; i++) ctx.fillRect(pad + i * bw, Math.min(y(0), y(s.values[i])), Math.max(1, bw - 0.3), Math.abs(y(s.values[i]) - y(0)));
    } else {
      ctx.beginPath();
      for (let i = 0; i < n; i++) (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(i), y(s.values[i]));
      ctx.stroke();
    }
  }
  ctx.setLineDash([]);
  return [lo, hi];
}

// Patch k's decoded row of a quantised part of the payload, or null when the payload does not hold the part.
function vfRow(payload, name, k) {
  const s = payload.sections;
  return s[name] ? vvRow(s, name, k, s[name].length / s[`${name}_lo`].length) : null;
}

class VFFollower extends VVView {
  constructor(root) {
    super(root);
    this.vvElements("vf-follower vz-view", VF_HTML, "vf-", ["image", "tip", "title", "patch", "pixels", "pixels-label",
      "embedding", "embedding-label", "attention", "attention-label", "norms", "norms-label"]);
    this.patch = 0;
    this.el.image.addEventListener("pointermove", (e) => this.onMove(e));
    this.el.image.addEventListener("pointerleave", () => vvHideTip(this.el.tip));
    this.el.image.addEventListener("click", (e) => {
      const cell = this.cellAt(e);
      if (!cell) return;
      this.patch = cell[0] * this.gw + cell[1];
      this.send({ row: cell[0], col: cell[1], at: Date.now() }); // first: the rerun starts while this draws
      this.draw();
    });
  }

  committed() { this.patchFromCommit = true; }

  setPayload(payload) {
    const h = payload.header;
    [this.gh, this.gw] = h.grid; [this.ph, this.pw] = h.patch_size; [this.H, this.W] = h.input_size;
    this.P = h.prefix_names.length; this.N = h.num_tokens;
    if (this.patchFromCommit) { this.patch = this.data.committed.row * this.gw + this.data.committed.col; this.patchFromCommit = false; }
    vvLoadImage(this, () => this.draw()); // a new payload's photo: drawn again once it is decoded
    this.draw();
  }

  row(name, k) { return vfRow(this.payload, name, k); }

  cellAt(event) { return this.payload ? vvCellAt(this.el.image, event, this.gh, this.gw) : null; }

  onMove(event) {
    const cell = this.cellAt(event);
    if (!cell) return;
    const k = cell[0] * this.gw + cell[1];
    if (k !== this.patch) { this.patch = k; this.draw(); }
    vvShowTip(this.el.tip, event, this.t("tip", { row: cell[0], col: cell[1], token: this.P + k }));
  }

  draw() {
    if (!this.payload) return;
    const el = this.el, k = this.patch, gh = this.gh, gw = this.gw;
    const r = Math.floor(k / gw), c = k % gw, token = this.P + k;
    // the model input with the grid, the committed patch (dashed) and the followed one
    const [w, h] = vvFit(this.W / this.H, VF_SIDE);
    const ctx = vvCanvas(el.image, w, h), cw = w / gw, ch = h / gh;
    if (this.image) ctx.drawImage(this.image, 0, 0, w, h);
    ctx.strokeStyle = "rgba(255,255,255,0.45)"; ctx.lineWidth = 1;
    for (let i = 1; i < gw; i++) { ctx.beginPath(); ctx.moveTo(i * cw, 0); ctx.lineTo(i * cw, h); ctx.stroke(); }
    for (let i = 1; i < gh; i++) { ctx.beginPath(); ctx.moveTo(0, i * ch); ctx.lineTo(w, i * ch); ctx.stroke(); }
    const cm = this.data.committed;
    ctx.setLineDash([4, 3]); ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2;
    ctx.strokeRect(cm.col * cw, cm.row * ch, cw, ch);
    ctx.setLineDash([]); ctx.strokeStyle = "#00e5ff"; ctx.lineWidth = 3;
    ctx.strokeRect(c * cw, r * ch, cw, ch);
    el.title.textContent = this.t("title", { row: r, col: c, token });
    // step 1: the patch itself, pixel for pixel
    const side = 92, sideH = Math.round((side * this.ph) / this.pw), pctx = vvCanvas(el.patch, side, sideH);
    if (this.image) vvBlit(pctx, this.image, 0, 0, side, sideH, 1, [c * this.pw, r * this.ph, this.pw, this.ph]);
    // step 2: flattened vector, channel by channel
    const pixels = this.row("pixels", k), per = this.ph * this.pw;
    el["pixels-label"].textContent = this.t("pixels", { n: pixels ? pixels.length : 0 });
    if (pixels) vfChart(el.pixels, 176, 80, VF_CHANNELS.map((colour, ch3) => ({ values: pixels.subarray(ch3 * per, (ch3 + 1) * per), colour })));
    // step 3: embedding
    const emb = this.row("embeddings", k);
    el["embedding-label"].textContent = emb ? this.t("embedding", { n: emb.length }) : this.t("missing");
    if (emb) vfChart(el.embedding, 280, 70, [{ values: emb, colour: "#3b5bdb" }], true);
    else vvCanvas(el.embedding, 280, 0);
    // step 5: attention row of this patch as the query, over the patches
    const att = this.row("attention", k);
    el["attention-label"].textContent = att ? this.t("attention", { layer: this.payload.header.layer, head: this.payload.header.head }) : this.t("missing");
    this.drawAttention(att);
    // step 6: token length after each block
    const norms = this.payload.sections.norms, L1 = norms ? norms.length / this.N : 0;
    let mine = null, mean = null;
    if (norms) {
      mine = new Float32Array(L1); mean = new Float32Array(L1);
      for (let l = 0; l < L1; l++) {
        mine[l] = norms[l * this.N + token];
        let sum = 0;
        for (let j = this.P; j < this.N; j++) sum += norms[l * this.N + j];
        mean[l] = sum / (this.N - this.P);
      }
      el["norms-label"].textContent = this.t("norms");
      vfChart(el.norms, 148, 100, [{ values: mean, colour: "#888", dash: true }, { values: mine, colour: "#e4572e" }]);
    }
    this.drawCount += 1;
    vvProbe("Follow", () => ({
      draw_count: this.drawCount, patch: k, row: r, col: c, token, grid: [gh, gw],
      tier: this.payload.header.tier, holds: this.payload.header.holds, committed: { row: cm.row, col: cm.col },
      pixels: pixels ? Array.from(pixels) : null, embedding: emb ? Array.from(emb) : null,
      attention: att ? Array.from(att) : null, norms: mine ? Array.from(mine) : null,
      layer: this.payload.header.layer, head: this.payload.header.head, drawn_at: performance.now(),
    }));
  }

  drawAttention(att) {
    const gh = this.gh, gw = this.gw, [w, h] = vvFit(gw / gh, 120);
    const ctx = vvCanvas(this.el.attention, att ? w : 0, att ? h : 0);
    if (!att) return;
    let hi = 0;
    for (let j = this.P; j < this.N; j++) hi = Math.max(hi, att[j]);
    hi = hi || 1; // as the page's attention figure: 0 … the largest patch value
    this.cellCanvas = vvDrawMap(ctx, att, gh, gw, this.lut, 0, hi, [0, 0, w, h], { offset: this.P, scratch: this.cellCanvas });
    const k = this.patch;
    ctx.strokeStyle = "#00e5ff"; ctx.lineWidth = 2;
    ctx.strokeRect((k % gw) * (w / gw), Math.floor(k / gw) * (h / gh), w / gw, h / gh);
  }
}

// ---- a later step's view of the committed patch, drawn where the page's figure of that step was --------------

const VS_HEIGHT = { pixels: 210, embeddings: 190, norms: 240 }; // css px of a chart
const VS_PAD = { l: 52, r: 12, t: 10, b: 40 }; // around a chart's plot area, for tick labels and axis titles
const VS_MAP_SIDE = 420; // css px of the attention map's longer side
const VS_SERIES = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692"]; // Plotly's colours
const VS_HTML = `<div class="vs-title vz-title"></div><div class="vs-subtitle"></div>
  <div class="vs-stage vz-stage"><canvas class="vs-canvas vz-map"></canvas><div class="vs-tip vz-tip"></div></div>
  <div class="vs-legend vz-legend"></div>`;

function vsNumber(v) { return Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.001) ? v.toExponential(2) : v.toFixed(3); }

class VFStep extends VVView {
  constructor(root) {
    super(root);
    this.box = this.vvElements("vs-step vz-view", VS_HTML, "vs-", ["title", "subtitle", "canvas", "tip", "legend"]);
    this.el.canvas.addEventListener("pointermove", (e) => this.onMove(e));
    this.el.canvas.addEventListener("pointerleave", () => vvHideTip(this.el.tip));
    this.width = 0;
    if (window.ResizeObserver) {
      new ResizeObserver(() => {
        const width = this.available();
        if (this.payload && width !== this.width) this.draw();
      }).observe(this.box); // the root may be a shadow root, which cannot be observed
    }
  }

  available() { return Math.max(260, Math.min(980, Math.floor(this.box.clientWidth || 640))); }

  setPayload(payload) {
    const h = payload.header;
    [this.gh, this.gw] = h.grid; [this.ph, this.pw] = h.patch_size; [this.H, this.W] = h.input_size;
    this.P = h.prefix_names.length; this.N = h.num_tokens;
    if (this.data.committed.step === "attention") vvLoadImage(this, () => this.draw());
    this.draw();
  }

  draw() {
    if (!this.payload) return;
    const c = this.data.committed, k = c.row * this.gw + c.col, step = c.step;
    this.width = this.available();
    this.el.title.textContent = this.t("title");
    this.el.subtitle.textContent = this.t("subtitle");
    this.el.legend.replaceChildren();
    this.shown = step === "attention" ? this.drawMap(k) : this.drawChart(step, this.series(step, k));
    this.drawCount += 1;
    vvProbe(`Step_${step}`, () => ({
      draw_count: this.drawCount, step, committed: { row: c.row, col: c.col }, title: this.el.title.textContent,
      values: this.shown ? this.shown.series.map((s) => Array.from(s.values)) : null, drawn_at: performance.now(),
    }));
  }

  // The lines (or bars) of a chart step: [{name, values, colour, dash, offset}], or null without the numbers.
  series(step, k) {
    const names = this.data.text.series || [];
    if (step === "pixels") {
      const pixels = vfRow(this.payload, "pixels", k), per = this.ph * this.pw;
      return pixels && VF_CHANNELS.map((colour, c) => ({ name: names[c], colour, offset: c * per,
        values: pixels.subarray(c * per, (c + 1) * per) }));
    }
    if (step === "embeddings") {
      const emb = vfRow(this.payload, "embeddings", k);
      return emb && [{ name: names[0], colour: "#3b5bdb", values: emb, bars: true }];
    }
    const norms = this.payload.sections.norms, N = this.N, P = this.P;
    if (!norms) return null;
    const L1 = norms.length / N, token = P + k;
    const column = (j) => Float32Array.from({ length: L1 }, (_, l) => norms[l * N + j]);
    const mean = Float32Array.from({ length: L1 }, (_, l) => {
      let sum = 0;
      for (let j = P; j < N; j++) sum += norms[l * N + j];
      return sum / (N - P);
    });
    const lines = [];
    for (let p = 0; p < P; p++) lines.push({ name: names[p], colour: VS_SERIES[p % VS_SERIES.length], values: column(p), marks: true });
    lines.push({ name: names[P], colour: VS_SERIES[P % VS_SERIES.length], values: column(token), marks: true });
    lines.push({ name: names[P + 1], colour: "#808080", values: mean, dash: true });
    return lines;
  }

  drawChart(step, series) {
    const w = this.width, h = VS_HEIGHT[step], ctx = vvCanvas(this.el.canvas, w, series ? h : 0);
    if (!series) { this.el.subtitle.textContent = this.t("missing"); return null; }
    const bars = series.some((s) => s.bars), n = Math.max(...series.map((s) => (s.offset || 0) + s.values.length));
    const [lo, hi] = vfRange(series.flatMap((s) => Array.from(s.values)).concat(bars ? [0] : []));
    const x0 = VS_PAD.l, x1 = w - VS_PAD.r, y0 = VS_PAD.t, y1 = h - VS_PAD.b;
    const ticks = this.data.text.ticks, cells = bars || !!ticks; // bars and named states sit in the middle of a cell
    const x = (i) => x0 + (x1 - x0) * (cells ? (i + 0.5) / n : i / Math.max(1, n - 1));
    const y = (v) => y1 - ((y1 - y0) * (v - lo)) / (hi - lo);
    ctx.font = "11px sans-serif"; ctx.fillStyle = "#555"; ctx.strokeStyle = "#e4e4e4"; ctx.lineWidth = 1;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const v of lo < 0 && hi > 0 ? [lo, 0, hi] : [lo, hi]) {
      ctx.beginPath(); ctx.moveTo(x0, y(v)); ctx.lineTo(x1, y(v)); ctx.stroke();
      ctx.fillText(vsNumber(v), x0 - 4, y(v));
    }
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    const at = ticks ? ticks.map((_, i) => i) : [0, Math.round((n - 1) / 2), n - 1];
    const every = Math.max(1, Math.ceil((at.length * 52) / (x1 - x0)));
    at.forEach((i, j) => { if (j % every === 0) ctx.fillText(ticks ? ticks[i] : String(i), x(i), y1 + 4); });
    ctx.fillText(this.t("x_axis"), (x0 + x1) / 2, h - 14);
    ctx.save(); ctx.translate(10, (y0 + y1) / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(this.t("y_axis"), 0, -6); ctx.restore();
    for (const s of series) {
      const off = s.offset || 0;
      ctx.strokeStyle = s.colour; ctx.fillStyle = s.colour; ctx.setLineDash(s.dash ? [4, 3] : []);
      if (s.bars) {
        const bw = Math.max(1, (x1 - x0) / n - 0.3);
        for (let i = 0; i < s.values.length; i++) {
          const top = Math.min(y(0), y(s.values[i]));
          ctx.fillRect(x(off + i) - bw / 2, top, bw, Math.max(1, Math.abs(y(s.values[i]) - y(0))));
        }
        continue;
      }
      ctx.lineWidth = s.marks ? 2 : 1; ctx.beginPath();
      for (let i = 0; i < s.values.length; i++) (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(off + i), y(s.values[i]));
      ctx.stroke();
      if (s.marks) for (let i = 0; i < s.values.length; i++) ctx.fillRect(x(off + i) - 2.5, y(s.values[i]) - 2.5, 5, 5);
    }
    ctx.setLineDash([]);
    if (series.length > 1) this.legend(series);
    return { series, n, x0, x1, cells, off: (s) => s.offset || 0 };
  }

  legend(series) {
    for (const s of series) {
      const item = document.createElement("span"), swatch = document.createElement("span");
      swatch.className = "vs-swatch"; swatch.style.borderTop = `3px ${s.dash ? "dashed" : "solid"} ${s.colour}`;
      item.append(swatch, document.createTextNode(s.name || ""));
      this.el.legend.append(item);
    }
  }

  drawMap(k) {
    const att = vfRow(this.payload, "attention", k), [w, h] = vvFit(this.W / this.H, Math.min(VS_MAP_SIDE, this.width));
    const ctx = vvCanvas(this.el.canvas, att ? w : 0, att ? h : 0);
    if (!att) { this.el.subtitle.textContent = this.t("missing"); return null; }
    if (this.image) ctx.drawImage(this.image, 0, 0, w, h);
    let hi = 0;
    for (let j = this.P; j < this.N; j++) hi = Math.max(hi, att[j]);
    hi = hi || 1; // as the page's attention figure: 0 … the largest patch value
    this.cellCanvas = vvDrawMap(ctx, att, this.gh, this.gw, this.lut, 0, hi, [0, 0, w, h],
      { offset: this.P, alpha: 0.6, scratch: this.cellCanvas });
    ctx.strokeStyle = "#00e5ff"; ctx.lineWidth = 2;
    ctx.strokeRect((k % this.gw) * (w / this.gw), Math.floor(k / this.gw) * (h / this.gh), w / this.gw, h / this.gh);
    const scale = document.createElement("canvas"), label = document.createElement("span");
    scale.width = 160; scale.height = 10;
    this.el.legend.append(scale, label);
    vvDrawScale(scale, this.lut, label, ` 0 … ${hi.toPrecision(3)} ${this.t("value")}`);
    return { series: [{ values: att }], map: true };
  }

  onMove(event) {
    const shown = this.shown;
    if (!shown) return;
    if (shown.map) {
      const cell = vvCellAt(this.el.canvas, event, this.gh, this.gw);
      if (!cell) return;
      const v = shown.series[0].values[this.P + cell[0] * this.gw + cell[1]];
      vvShowTip(this.el.tip, event, this.t("tip", { row: cell[0], col: cell[1], value: v.toFixed(4) }));
      return;
    }
    const box = this.el.canvas.getBoundingClientRect(), px = event.clientX - box.left;
    const span = shown.x1 - shown.x0;
    const i = Math.round(shown.cells ? ((px - shown.x0) / span) * shown.n - 0.5 : ((px - shown.x0) / span) * (shown.n - 1));
    const found = shown.series.map((s) => [s, i - shown.off(s)]).filter(([s, j]) => j >= 0 && j < s.values.length);
    if (!found.length) { vvHideTip(this.el.tip); return; }
    const ticks = this.data.text.ticks, where = ticks ? ticks[i] : String(i);
    vvShowTip(this.el.tip, event, found.map(([s, j]) => this.t("tip", { name: s.name || "", x: where,
      value: vsNumber(s.values[j]) })).join(" · "));
  }
}

// One component, two views: a step's view when its committed state names a step, else the follower. A mount
// (one keyed element) keeps the view it started with.
class VFEither {
  constructor(root) { this.root = root; this.view = null; }

  update(data, send) {
    if (!this.view) this.view = new (data.committed && data.committed.step ? VFStep : VFFollower)(this.root);
    this.view.update(data, send);
  }

  stop() { if (this.view) this.view.stop(); }
}

export default vvMount(VFEither);
