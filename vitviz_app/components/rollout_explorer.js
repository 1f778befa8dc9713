// Rollout explorer: scrub through the layers and switch the head fusion with no server round trip. It owns the
// fusion and the layer shown: a fusion button, or letting go of the slider, commits them to the page.
//
// Data (rollout_explorer.py): payload, committed {fusion, layer}, colours, text {layer, fusion, tip, prefix, titles:
// {fusion: [title per layer]}, fusion_names: {fusion: label}, prefix_labels: {name: label}}. The maps come from
// the payload carrier (vitviz/export/rollout.py). Test probe: Rollout.

const VR_SIDE = 420; // css px of the map's longer side

const VR_HTML = `<div class="vr-controls vz-controls"><label><span class="vr-layer-label"></span>
  <input class="vr-layer vz-slider" type="range" min="0" step="1"> <b class="vr-layer-value"></b></label>
  <span class="vr-fusions"></span></div>
  <div class="vr-title vz-title"></div>
  <div class="vr-stage vz-stage"><canvas class="vr-map vz-map"></canvas><div class="vr-tip vz-tip"></div></div>
  <div class="vr-legend vz-legend"><canvas class="vr-scale" width="160" height="10"></canvas><span class="vr-scale-text"></span></div>
  <div class="vr-prefix vz-note"></div>`;

class VRExplorer extends VVView {
  constructor(root) {
    super(root);
    this.vvElements("vr-explorer vz-view", VR_HTML, "vr-",
      ["layer-label", "layer", "layer-value", "fusions", "title", "map", "tip", "scale", "scale-text", "prefix"]);
    this.state = { step: -1, fusion: "mean" };
    this.el.layer.addEventListener("input", () => { this.state.step = +this.el.layer.value; this.draw(); });
    this.el.layer.addEventListener("change", () => { this.state.step = +this.el.layer.value; this.commit(); });
    this.el.map.addEventListener("pointermove", (e) => this.onMove(e));
    this.el.map.addEventListener("pointerleave", () => vvHideTip(this.el.tip));
  }

  committed(c) { this.state.fusion = c.fusion; this.layer = c.layer; this.fromCommit = true; }

  commit() { // the page follows: read-out caption, downloads, URL
    this.send({ fusion: this.state.fusion, layer: this.layers[this.state.step], at: Date.now() });
    this.draw();
  }

  received() { this.el["layer-label"].textContent = this.t("layer"); }

  setPayload(payload, previous) {
    const h = payload.header, s = payload.sections;
    const fresh = !previous || previous.header.id !== h.id;
    [this.gh, this.gw] = h.grid;
    this.layers = h.layers; this.fusions = h.fusions; this.P = h.prefix_names.length;
    const G = this.gh * this.gw, count = this.fusions.length * this.layers.length;
    this.maps = new Float32Array(count * G);
    for (let m = 0; m < count; m++) this.maps.set(vvRow(s, "maps", m, G), m * G);
    const at = this.layers.indexOf(this.layer);
    if (this.fromCommit && at >= 0) this.state.step = at; // the committed layer
    else if (fresh || this.state.step < 0 || this.state.step >= this.layers.length) this.state.step = this.layers.length - 1;
    this.fromCommit = false;
    if (!this.fusions.includes(this.state.fusion)) this.state.fusion = this.fusions[0];
    this.el.layer.max = String(this.layers.length - 1);
    this.buildFusions();
    vvLoadImage(this, () => this.draw()); // a new payload's photo: drawn again once it is decoded
    this.draw();
  }

  buildFusions() {
    const box = this.el.fusions, names = this.data.text.fusion_names || {};
    box.innerHTML = "";
    const label = document.createElement("span");
    label.textContent = this.t("fusion");
    box.appendChild(label);
    for (const f of this.fusions) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "vr-fusion vz-chip"; b.dataset.fusion = f; b.textContent = names[f] || f;
      b.addEventListener("click", () => { this.state.fusion = f; this.commit(); });
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
    for (const b of el.fusions.querySelectorAll("button")) b.classList.toggle("vz-on", b.dataset.fusion === fusion);
    const [values, prefix] = this.current();
    let hi = 0;
    for (const v of values) hi = Math.max(hi, v);
    hi = hi || 1; // as the server figure: 0 … this frame's maximum
    const info = this.payload.header.image;
    const [w, h] = vvFit(info ? info.width / info.height : gw / gh, VR_SIDE);
    const ctx = vvCanvas(el.map, w, h);
    if (this.image) ctx.drawImage(this.image, 0, 0, w, h);
    this.cellCanvas = vvDrawMap(ctx, values, gh, gw, this.lut, 0, hi, [0, 0, w, h],
      { alpha: this.image ? 0.6 : 1, scratch: this.cellCanvas });
    el.title.textContent = ((this.data.text.titles || {})[fusion] || [])[step] || "";
    vvDrawScale(el.scale, this.lut, el["scale-text"], ` 0 … ${hi.toPrecision(3)}`);
    const labels = this.data.text.prefix_labels || {};
    const shares = this.payload.header.prefix_names.map((n, i) => `${labels[n] || n}: ${(100 * prefix[i]).toFixed(1)}%`);
    el.prefix.textContent = shares.length ? this.t("prefix", { shares: shares.join(", ") }) : "";
    this.drawCount += 1;
    vvProbe("Rollout", () => ({
      draw_count: this.drawCount, fusion, layer, step, grid: [gh, gw], tier: this.payload.header.tier,
      payload: this.payload.header.id, values: Array.from(values), prefix: Array.from(prefix),
      title: el.title.textContent, committed: this.data.committed,
      colour_ends: [Array.from(this.lut.slice(0, 3)), Array.from(this.lut.slice(765))], drawn_at: performance.now(),
    }));
  }

  onMove(event) {
    if (!this.payload) return;
    const cell = vvCellAt(this.el.map, event, this.gh, this.gw);
    if (!cell) return;
    const v = this.current()[0][cell[0] * this.gw + cell[1]];
    vvShowTip(this.el.tip, event, this.t("tip", { row: cell[0], col: cell[1], value: v.toPrecision(3) }));
  }
}

export default vvMount(VRExplorer);
