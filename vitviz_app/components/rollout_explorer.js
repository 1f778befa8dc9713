// Rollout explorer: scrub through the layers and switch the head fusion with no server round trip.
//
// Data (from rollout_explorer.py): {payload, committed: {fusion}, colours, titles: {fusion: [text per layer]},
// text: {...templates}, fusionNames: {fusion: label}, prefixLabels: {name: label}}. The maps come from the
// payload carrier (payload.js, vitviz/export/rollout.py). What is drawn is exposed on window.__vitvizRollout.

const VR_SIDE = 420; // css px of the map's longer side

class VRExplorer {
  constructor(root) {
    const box = document.createElement("div");
    box.className = "vr-explorer";
    box.innerHTML = `<div class="vr-controls"><label><span class="vr-layer-label"></span>
      <input class="vr-layer" type="range" min="0" step="1"> <b class="vr-layer-value"></b></label>
      <span class="vr-fusions"></span></div>
      <div class="vr-title"></div>
      <div class="vr-stage"><canvas class="vr-map"></canvas><div class="vr-tip"></div></div>
      <div class="vr-legend"><canvas class="vr-scale" width="160" height="10"></canvas><span class="vr-scale-text"></span></div>
      <div class="vr-prefix"></div>`;
    root.appendChild(box);
    this.el = {};
    for (const name of ["layer-label", "layer", "layer-value", "fusions", "title", "map", "tip", "scale", "scale-text", "prefix"]) {
      this.el[name] = box.querySelector(".vr-" + name);
    }
    this.state = { step: -1, fusion: "mean" };
    this.drawCount = 0;
    this.waiting = () => {};
    this.el.layer.addEventListener("input", () => { this.state.step = +this.el.layer.value; this.draw(); });
    this.el.map.addEventListener("pointermove", (e) => this.onMove(e));
    this.el.map.addEventListener("pointerleave", () => { this.el.tip.style.display = "none"; });
  }

  update(data) {
    this.data = data;
    this.text = data.text || {};
    if (data.colours && data.colours !== this.colours) { this.colours = data.colours; this.lut = vvLut(data.colours); }
    if (data.committed.fusion !== this.committedSeen) { this.committedSeen = data.committed.fusion; this.state.fusion = data.committed.fusion; }
    this.el["layer-label"].textContent = this.text.layer || "";
    this.waiting();
    this.waiting = vvWhenPayload(data.payload, (payload) => this.setPayload(payload));
  }

  setPayload(payload) {
    const h = payload.header, s = payload.sections;
    const fresh = !this.payload || this.payload.header.id !== h.id;
    this.payload = payload;
    [this.gh, this.gw] = h.grid;
    this.layers = h.layers; this.fusions = h.fusions; this.P = h.prefix_names.length;
    const G = this.gh * this.gw, count = this.fusions.length * this.layers.length;
    this.maps = new Float32Array(count * G);
    for (let m = 0; m < count; m++) {
      const lo = s.maps_lo[m], step = s.maps_step[m];
      for (let i = 0; i < G; i++) this.maps[m * G + i] = lo + s.maps[m * G + i] * step;
    }
    if (fresh || this.state.step < 0 || this.state.step >= this.layers.length) this.state.step = this.layers.length - 1;
    if (!this.fusions.includes(this.state.fusion)) this.state.fusion = this.fusions[0];
    this.el.layer.max = String(this.layers.length - 1);
    this.buildFusions();
    vvLoadImage(this, () => this.draw()); // a new payload's photo: drawn again once it is decoded
    this.draw();
  }

  buildFusions() {
    const box = this.el.fusions, names = this.data.fusionNames || {};
    box.innerHTML = "";
    const label = document.createElement("span");
    label.textContent = this.text.fusion || "";
    box.appendChild(label);
    for (const f of this.fusions) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "vr-fusion"; b.dataset.fusion = f; b.textContent = names[f] || f;
      b.addEventListener("click", () => { this.state.fusion = f; this.draw(); });
      box.appendChild(b);
    }
  }

  current() { // (values over the patches, prefix entries) of the shown map
    const G = this.gh * this.gw, f = this.fusions.indexOf(this.state.fusion), m = f * this.layers.length + this.state.step;
    const prefix = this.payload.sections.prefix.subarray(m * this.P, (m + 1) * this.P);
    return [this.maps.subarray(m * G, (m + 1) * G), prefix];
  }

  draw() {
    if (!this.payload) return;
    const el = this.el, gh = this.gh, gw = this.gw, { step, fusion } = this.state;
    const layer = this.layers[step];
    el.layer.value = String(step);
    el["layer-value"].textContent = String(layer);
    for (const b of el.fusions.querySelectorAll("button")) b.classList.toggle("vr-on", b.dataset.fusion === fusion);
    const [values, prefix] = this.current();
    let hi = 0;
    for (const v of values) hi = Math.max(hi, v);
    hi = hi || 1; // as the server figure: 0 … this frame's maximum
    const info = this.payload.header.image, aspect = info ? info.width / info.height : gw / gh;
    const w = aspect >= 1 ? VR_SIDE : Math.round(VR_SIDE * aspect), h = aspect >= 1 ? Math.round(VR_SIDE / aspect) : VR_SIDE;
    const ratio = window.devicePixelRatio || 1, canvas = el.map;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
    canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (this.image) ctx.drawImage(this.image, 0, 0, w, h);
    const cells = new ImageData(gw, gh);
    for (let i = 0; i < gh * gw; i++) {
      const k = Math.max(0, Math.min(255, Math.round((values[i] / hi) * 255))) * 3;
      cells.data[i * 4] = this.lut[k]; cells.data[i * 4 + 1] = this.lut[k + 1]; cells.data[i * 4 + 2] = this.lut[k + 2];
      cells.data[i * 4 + 3] = 255;
    }
    if (!this.cellCanvas) this.cellCanvas = document.createElement("canvas");
    this.cellCanvas.width = gw; this.cellCanvas.height = gh;
    this.cellCanvas.getContext("2d").putImageData(cells, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.globalAlpha = this.image ? 0.6 : 1;
    ctx.drawImage(this.cellCanvas, 0, 0, w, h);
    ctx.globalAlpha = 1;
    const titles = (this.data.titles || {})[fusion] || [];
    el.title.textContent = titles[step] || "";
    this.drawScale(hi);
    const labels = this.data.prefixLabels || {};
    const shares = this.payload.header.prefix_names.map((n, i) => `${labels[n] || n}: ${(100 * prefix[i]).toFixed(1)}%`);
    el.prefix.textContent = shares.length ? vvFormat(this.text.prefix, { shares: shares.join(", ") }) : "";
    this.drawCount += 1;
    window.__vitvizRollout = { drawCount: this.drawCount, fusion, layer, step, grid: [gh, gw], tier: this.payload.header.tier,
      payload: this.payload.header.id, values: Array.from(values), prefix: Array.from(prefix),
      title: el.title.textContent, committed: this.data.committed,
      colourEnds: [Array.from(this.lut.slice(0, 3)), Array.from(this.lut.slice(765))], drawnAt: performance.now() };
  }

  drawScale(hi) {
    const c = this.el.scale, ctx = c.getContext("2d"), img = ctx.createImageData(c.width, 1);
    for (let x = 0; x < c.width; x++) {
      const k = Math.round((x / (c.width - 1)) * 255) * 3;
      img.data.set([this.lut[k], this.lut[k + 1], this.lut[k + 2], 255], x * 4);
    }
    for (let y = 0; y < c.height; y++) ctx.putImageData(img, 0, y);
    this.el["scale-text"].textContent = ` 0 … ${hi.toPrecision(3)}`;
  }

  onMove(event) {
    if (!this.payload) return;
    const box = this.el.map.getBoundingClientRect();
    const c = Math.floor(((event.clientX - box.left) / box.width) * this.gw);
    const r = Math.floor(((event.clientY - box.top) / box.height) * this.gh);
    if (r < 0 || c < 0 || r >= this.gh || c >= this.gw) return;
    const v = this.current()[0][r * this.gw + c];
    const tip = this.el.tip, stage = tip.parentElement.getBoundingClientRect();
    tip.textContent = vvFormat(this.text.tip, { row: r, col: c, value: v.toPrecision(3) });
    Object.assign(tip.style, { display: "block", left: `${Math.min(event.clientX - stage.left + 12, stage.width - 10)}px`,
                               top: `${event.clientY - stage.top + 14}px` });
  }
}

export default function (component) {
  const { data, parentElement } = component;
  if (!parentElement.__vitvizRollout) parentElement.__vitvizRollout = new VRExplorer(parentElement);
  parentElement.__vitvizRollout.update(data);
  return () => { parentElement.__vitvizRollout.waiting(); };
}
