// Patch follower ("How a ViT works", step 1): point at a patch and its numbers from the later steps (its
// pixels, flattened vector, embedding, attention row, token length per block) are redrawn at once, with no
// server round trip; a click commits the patch to the page, whose steps then follow it in full.
//
// Data (from patch_follower.py): {payload, committed: {row, col}, colours, text: {templates}}. The numbers come
// from the payload carrier (payload.js, vitviz/export/walkthrough.py). What is drawn is exposed on
// window.__vitvizFollow.

const VF_SIDE = 300; // css px of the image's longer side
const VF_CHANNELS = ["#d62728", "#2ca02c", "#1f77b4"]; // as the page's step-2 figure: red, green, blue

function vfCanvas(canvas, w, h) {
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
  canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return ctx;
}

function vfRange(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return hi > lo ? [lo, hi] : [lo - 1, hi + 1];
}

// A line (or bar) chart of `series` [{values, colour, dash}] into a canvas of w × h css px.
function vfChart(canvas, w, h, series, bars) {
  const ctx = vfCanvas(canvas, w, h), pad = 4;
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

class VFFollower {
  constructor(root) {
    const box = document.createElement("div");
    box.className = "vf-follower";
    box.innerHTML = `<div class="vf-stage"><canvas class="vf-image"></canvas><div class="vf-tip"></div></div>
      <div class="vf-panel"><div class="vf-title"></div>
        <div class="vf-row"><canvas class="vf-patch"></canvas><div><div class="vf-label vf-pixels-label"></div><canvas class="vf-pixels"></canvas></div></div>
        <div class="vf-label vf-embedding-label"></div><canvas class="vf-embedding"></canvas>
        <div class="vf-row"><div><div class="vf-label vf-attention-label"></div><canvas class="vf-attention"></canvas></div>
        <div><div class="vf-label vf-norms-label"></div><canvas class="vf-norms"></canvas></div></div></div>`;
    root.appendChild(box);
    this.el = {};
    for (const name of ["image", "tip", "title", "patch", "pixels", "pixels-label", "embedding", "embedding-label",
                        "attention", "attention-label", "norms", "norms-label"]) {
      this.el[name] = box.querySelector(".vf-" + name);
    }
    this.patch = 0;
    this.drawCount = 0;
    this.waiting = () => {};
    this.el.image.addEventListener("pointermove", (e) => this.onMove(e));
    this.el.image.addEventListener("pointerleave", () => { this.el.tip.style.display = "none"; });
    this.el.image.addEventListener("click", (e) => {
      const cell = this.cellAt(e);
      if (!cell) return;
      this.patch = cell[0] * this.gw + cell[1];
      this.commit({ row: cell[0], col: cell[1], at: Date.now() }); // first: the rerun starts while this draws
      this.draw();
    });
  }

  update(data, commit) {
    this.data = data; this.commit = commit; this.text = data.text || {};
    if (data.colours && data.colours !== this.colours) { this.colours = data.colours; this.lut = vvLut(data.colours); }
    const key = JSON.stringify(data.committed);
    if (key !== this.committedSeen) { this.committedSeen = key; this.patchFromCommit = true; }
    this.waiting();
    this.waiting = vvWhenPayload(data.payload, (payload) => this.setPayload(payload));
  }

  setPayload(payload) {
    const h = payload.header;
    this.payload = payload;
    [this.gh, this.gw] = h.grid; [this.ph, this.pw] = h.patch_size; [this.H, this.W] = h.input_size;
    this.P = h.prefix_names.length; this.N = h.num_tokens;
    if (this.patchFromCommit) { this.patch = this.data.committed.row * this.gw + this.data.committed.col; this.patchFromCommit = false; }
    vvLoadImage(this, () => this.draw()); // a new payload's photo: drawn again once it is decoded
    this.draw();
  }

  row(name, k) { // patch k's decoded row of a quantised part, or null
    const s = this.payload.sections;
    if (!s[name]) return null;
    const n = s[name].length / s[`${name}_lo`].length, lo = s[`${name}_lo`][k], step = s[`${name}_step`][k];
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + s[name][k * n + i] * step;
    return out;
  }

  cellAt(event) {
    if (!this.payload) return null;
    const box = this.el.image.getBoundingClientRect();
    const x = (event.clientX - box.left) / box.width, y = (event.clientY - box.top) / box.height;
    if (x < 0 || y < 0 || x >= 1 || y >= 1) return null;
    return [Math.floor(y * this.gh), Math.floor(x * this.gw)];
  }

  onMove(event) {
    const cell = this.cellAt(event);
    if (!cell) return;
    const k = cell[0] * this.gw + cell[1];
    if (k !== this.patch) { this.patch = k; this.draw(); }
    const tip = this.el.tip, stage = tip.parentElement.getBoundingClientRect();
    tip.textContent = vvFormat(this.text.tip, { row: cell[0], col: cell[1], token: this.P + k });
    Object.assign(tip.style, { display: "block", left: `${Math.min(event.clientX - stage.left + 12, stage.width - 10)}px`,
                               top: `${event.clientY - stage.top + 14}px` });
  }

  draw() {
    if (!this.payload) return;
    const el = this.el, t = this.text, k = this.patch, gh = this.gh, gw = this.gw;
    const r = Math.floor(k / gw), c = k % gw, token = this.P + k;
    // the model input with the grid, the committed patch (dashed) and the followed one
    const aspect = this.W / this.H, w = aspect >= 1 ? VF_SIDE : Math.round(VF_SIDE * aspect);
    const h = aspect >= 1 ? Math.round(VF_SIDE / aspect) : VF_SIDE;
    const ctx = vfCanvas(el.image, w, h), cw = w / gw, ch = h / gh;
    if (this.image) ctx.drawImage(this.image, 0, 0, w, h);
    ctx.strokeStyle = "rgba(255,255,255,0.45)"; ctx.lineWidth = 1;
    for (let i = 1; i < gw; i++) { ctx.beginPath(); ctx.moveTo(i * cw, 0); ctx.lineTo(i * cw, h); ctx.stroke(); }
    for (let i = 1; i < gh; i++) { ctx.beginPath(); ctx.moveTo(0, i * ch); ctx.lineTo(w, i * ch); ctx.stroke(); }
    const cm = this.data.committed;
    ctx.setLineDash([4, 3]); ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2;
    ctx.strokeRect(cm.col * cw, cm.row * ch, cw, ch);
    ctx.setLineDash([]); ctx.strokeStyle = "#00e5ff"; ctx.lineWidth = 3;
    ctx.strokeRect(c * cw, r * ch, cw, ch);
    el.title.textContent = vvFormat(t.title, { row: r, col: c, token });
    // step 1: the patch itself, pixel for pixel
    const side = 92, pctx = vfCanvas(el.patch, side, Math.round((side * this.ph) / this.pw));
    pctx.imageSmoothingEnabled = false;
    if (this.image) pctx.drawImage(this.image, c * this.pw, r * this.ph, this.pw, this.ph, 0, 0, side, Math.round((side * this.ph) / this.pw));
    // step 2: flattened vector, channel by channel
    const pixels = this.row("pixels", k), per = this.ph * this.pw;
    el["pixels-label"].textContent = vvFormat(t.pixels, { n: pixels ? pixels.length : 0 });
    if (pixels) vfChart(el.pixels, 176, 80, VF_CHANNELS.map((colour, ch3) => ({ values: pixels.subarray(ch3 * per, (ch3 + 1) * per), colour })));
    // step 3: embedding
    const emb = this.row("embeddings", k);
    el["embedding-label"].textContent = emb ? vvFormat(t.embedding, { n: emb.length }) : t.missing;
    if (emb) vfChart(el.embedding, 280, 70, [{ values: emb, colour: "#3b5bdb" }], true);
    else vfCanvas(el.embedding, 280, 0);
    // step 5: attention row of this patch as the query, over the patches
    const att = this.row("attention", k);
    el["attention-label"].textContent = att ? vvFormat(t.attention, { layer: this.payload.header.layer, head: this.payload.header.head }) : t.missing;
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
      el["norms-label"].textContent = t.norms;
      vfChart(el.norms, 148, 100, [{ values: mean, colour: "#888", dash: true }, { values: mine, colour: "#e4572e" }]);
    }
    this.drawCount += 1;
    window.__vitvizFollow = { drawCount: this.drawCount, patch: k, row: r, col: c, token, grid: [gh, gw],
      tier: this.payload.header.tier, holds: this.payload.header.holds, committed: cm,
      pixels: pixels ? Array.from(pixels) : null, embedding: emb ? Array.from(emb) : null,
      attention: att ? Array.from(att) : null, norms: mine ? Array.from(mine) : null,
      layer: this.payload.header.layer, head: this.payload.header.head, drawnAt: performance.now() };
  }

  drawAttention(att) {
    const gh = this.gh, gw = this.gw, side = 120;
    const w = gw >= gh ? side : Math.round((side * gw) / gh), h = gw >= gh ? Math.round((side * gh) / gw) : side;
    const ctx = vfCanvas(this.el.attention, att ? w : 0, att ? h : 0);
    if (!att) return;
    let hi = 0;
    for (let j = this.P; j < this.N; j++) hi = Math.max(hi, att[j]);
    hi = hi || 1; // as the page's attention figure: 0 … the largest patch value
    const cells = new ImageData(gw, gh);
    for (let i = 0; i < gh * gw; i++) {
      const q = Math.max(0, Math.min(255, Math.round((att[this.P + i] / hi) * 255))) * 3;
      cells.data.set([this.lut[q], this.lut[q + 1], this.lut[q + 2], 255], i * 4);
    }
    const tmp = document.createElement("canvas");
    tmp.width = gw; tmp.height = gh;
    tmp.getContext("2d").putImageData(cells, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, 0, 0, w, h);
    const k = this.patch;
    ctx.strokeStyle = "#00e5ff"; ctx.lineWidth = 2;
    ctx.strokeRect((k % gw) * (w / gw), Math.floor(k / gw) * (h / gh), w / gw, h / gh);
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (!parentElement.__vitvizFollow) parentElement.__vitvizFollow = new VFFollower(parentElement);
  parentElement.__vitvizFollow.update(data, (value) => setTriggerValue("commit", value));
  return () => { parentElement.__vitvizFollow.waiting(); };
}
