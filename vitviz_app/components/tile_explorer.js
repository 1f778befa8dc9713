// Tile explorer: a grid of small maps, one per grid position; hovering a tile shows its map large, with no
// server round trip; a click commits the position to the page. Maps come from the payload carrier
// (payload.js, vitviz/export/maps.py). What is drawn is exposed on window.__vitvizTiles.

// Colours: the stops of the server figure's scale (vitviz.figures.SIMILARITY_SCALE), sent by tile_explorer.py.

class VTExplorer {
  constructor(root) {
    const box = document.createElement("div");
    box.className = "vt-explorer";
    box.innerHTML = `<div class="vt-col"><div class="vt-caption"></div><canvas class="vt-tiles"></canvas></div>
      <div class="vt-col"><div class="vt-title"></div><div class="vt-stage"><canvas class="vt-big"></canvas>
      <div class="vt-tip"></div></div><div class="vt-note"></div></div>`;
    root.appendChild(box);
    this.tiles = box.querySelector(".vt-tiles");
    this.big = box.querySelector(".vt-big");
    this.tip = box.querySelector(".vt-tip");
    this.title = box.querySelector(".vt-title");
    this.note = box.querySelector(".vt-note");
    this.caption = box.querySelector(".vt-caption");
    this.index = 0;
    this.drawCount = 0;
    this.waiting = () => {};
    this.tiles.addEventListener("pointermove", (e) => {
      const k = this.tileAt(e);
      if (k !== null && k !== this.index) { this.index = k; this.draw(); }
    });
    this.tiles.addEventListener("click", (e) => {
      const k = this.tileAt(e);
      if (k === null) return;
      this.index = k; this.draw();
      this.commit({ row: Math.floor(k / this.gw), col: k % this.gw, at: Date.now() });
    });
    this.big.addEventListener("pointermove", (e) => this.onBigMove(e));
    this.big.addEventListener("pointerleave", () => { this.tip.style.display = "none"; });
  }

  update(data, commit) {
    this.commit = commit;
    this.data = data;
    if (data.colours && data.colours !== this.colours) { this.colours = data.colours; this.lut = vvLut(data.colours); }
    if (data.committed !== this.committedSeen) { this.committedSeen = data.committed; this.index = data.committed; }
    this.waiting();
    this.waiting = vvWhenPayload(data.payload, (payload) => this.setPayload(payload));
  }

  setPayload(payload) {
    const h = payload.header, s = payload.sections;
    [this.gh, this.gw] = h.grid;
    this.count = h.count;
    const n = this.gh * this.gw;
    this.maps = new Float32Array(this.count * n);
    for (let k = 0; k < this.count; k++) {
      const lo = s.maps_lo[k], step = s.maps_step[k];
      for (let i = 0; i < n; i++) this.maps[k * n + i] = lo + s.maps[k * n + i] * step;
    }
    this.range = h.value_range;
    this.caption.textContent = this.data.caption || "";
    this.drawTiles();
    this.draw();
  }

  tileAt(event) {
    if (!this.maps) return null;
    const box = this.tiles.getBoundingClientRect();
    const x = (event.clientX - box.left) / box.width, y = (event.clientY - box.top) / box.height;
    if (x < 0 || y < 0 || x >= 1 || y >= 1) return null;
    return Math.floor(y * this.gh) * this.gw + Math.floor(x * this.gw);
  }

  mapRange(values) {
    if (this.range) return this.range;
    let lo = Infinity, hi = -Infinity;
    for (const v of values) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return [lo, hi];
  }

  paint(values, image, width, x0, y0) {
    const [lo, hi] = this.mapRange(values), span = hi > lo ? hi - lo : 1;
    for (let r = 0; r < this.gh; r++) for (let c = 0; c < this.gw; c++) {
      const k3 = Math.max(0, Math.min(255, Math.round(((values[r * this.gw + c] - lo) / span) * 255))) * 3, at = ((y0 + r) * width + x0 + c) * 4;
      image.data[at] = this.lut[k3]; image.data[at + 1] = this.lut[k3 + 1]; image.data[at + 2] = this.lut[k3 + 2]; image.data[at + 3] = 255;
    }
  }

  drawTiles() { // every position's map, one tile each, in grid order
    const gh = this.gh, gw = this.gw, n = gh * gw, W = gw * (gw + 1), H = gh * (gh + 1);
    const image = new ImageData(W, H);
    for (let k = 0; k < this.count; k++) {
      this.paint(this.maps.subarray(k * n, (k + 1) * n), image, W, (k % gw) * (gw + 1), Math.floor(k / gw) * (gh + 1));
    }
    this.tileImage = document.createElement("canvas");
    this.tileImage.width = W; this.tileImage.height = H;
    this.tileImage.getContext("2d").putImageData(image, 0, 0);
  }

  draw() {
    if (!this.maps) return;
    const gh = this.gh, gw = this.gw, n = gh * gw, k = this.index, side = 380;
    const w = gw >= gh ? side : Math.round((side * gw) / gh), h = gw >= gh ? Math.round((side * gh) / gw) : side;
    for (const [canvas, cw, ch] of [[this.tiles, w, h], [this.big, w, h]]) {
      if (canvas.width !== cw || canvas.height !== ch) { canvas.width = cw; canvas.height = ch; }
    }
    const t = this.tiles.getContext("2d");
    t.imageSmoothingEnabled = false;
    t.clearRect(0, 0, w, h);
    t.drawImage(this.tileImage, 0, 0, w, h);
    const tw = w / gw, th = h / gh;
    t.lineWidth = 2; t.strokeStyle = "#e4572e";
    t.strokeRect((k % gw) * tw + 1, Math.floor(k / gw) * th + 1, tw - 2, th - 2);
    const values = this.maps.subarray(k * n, (k + 1) * n);
    const image = new ImageData(gw, gh);
    this.paint(values, image, gw, 0, 0);
    const cells = document.createElement("canvas");
    cells.width = gw; cells.height = gh;
    cells.getContext("2d").putImageData(image, 0, 0);
    const b = this.big.getContext("2d");
    b.imageSmoothingEnabled = false;
    b.drawImage(cells, 0, 0, w, h);
    const r = Math.floor(k / gw), c = k % gw;
    b.lineWidth = 2; b.strokeStyle = "#fff";
    b.strokeRect(c * (w / gw) + 1, r * (h / gh) + 1, w / gw - 2, h / gh - 2);
    const [lo, hi] = this.mapRange(values);
    const text = this.data.text || {};
    this.title.textContent = vvFormat(text.title, { row: r, col: c });
    this.note.textContent = vvFormat(text.note, { lo: lo.toFixed(2), hi: hi.toFixed(2) });
    this.drawCount += 1;
    window.__vitvizTiles = { index: k, grid: [gh, gw], values: Array.from(values), drawCount: this.drawCount,
                             committed: this.data.committed };
  }

  onBigMove(event) {
    if (!this.maps) return;
    const box = this.big.getBoundingClientRect();
    const c = Math.floor(((event.clientX - box.left) / box.width) * this.gw);
    const r = Math.floor(((event.clientY - box.top) / box.height) * this.gh);
    if (r < 0 || c < 0 || r >= this.gh || c >= this.gw) return;
    const n = this.gh * this.gw, v = this.maps[this.index * n + r * this.gw + c];
    this.tip.textContent = vvFormat((this.data.text || {}).tip, { row: r, col: c, value: v.toFixed(3) });
    const stage = this.tip.parentElement.getBoundingClientRect();
    Object.assign(this.tip.style, { display: "block", left: `${event.clientX - stage.left + 12}px`,
                                     top: `${event.clientY - stage.top + 14}px` });
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (!parentElement.__vitvizTiles) parentElement.__vitvizTiles = new VTExplorer(parentElement);
  parentElement.__vitvizTiles.update(data, (value) => setTriggerValue("commit", value));
  return () => { parentElement.__vitvizTiles.waiting(); };
}
