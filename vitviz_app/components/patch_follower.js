// Patch follower ("How a ViT works", step 1): point at a patch and its numbers from the later steps (its
// pixels, flattened vector, embedding, attention row, token length per block) are redrawn at once, with no
// server round trip; a click commits the patch to the page, whose steps then follow it in full.
//
// Data (patch_follower.py): payload, committed {row, col}, colours, text {templates}. The numbers come from the
// payload carrier (vitviz/export/walkthrough.py). Test probe: Follow.

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

  row(name, k) { // patch k's decoded row of a quantised part, or null
    const s = this.payload.sections;
    return s[name] ? vvRow(s, name, k, s[name].length / s[`${name}_lo`].length) : null;
  }

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
      tier: this.payload.header.tier, holds: this.payload.header.holds, committed: cm,
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

export default vvMount(VFFollower);
