// Tile explorer: a grid of small maps, one per grid position; hovering a tile shows its map large, with no
// server round trip; a click commits the position to the page.
//
// Data (tile_explorer.py): payload, committed {row, col}, colours (the server figure's scale,
// vitviz.figures.SIMILARITY_SCALE), text {title, note, tip, caption}. The maps come from the payload carrier
// (vitviz/export/maps.py). Test probe: Tiles.

const VT_SIDE = 380; // css px of the longer side of the tiles and of the large map

const VT_HTML = `<div class="vt-col"><div class="vt-caption"></div><canvas class="vt-tiles"></canvas></div>
  <div class="vt-col"><div class="vt-title vz-title"></div><div class="vt-stage vz-stage"><canvas class="vt-big vz-map"></canvas>
  <div class="vt-tip vz-tip"></div></div><div class="vt-note"></div></div>`;

class VTExplorer extends VVView {
  constructor(root) {
    super(root);
    this.vvElements("vt-explorer vz-view", VT_HTML, "vt-", ["tiles", "big", "tip", "title", "note", "caption"]);
    this.index = 0;
    this.el.tiles.addEventListener("pointermove", (e) => {
      const k = this.tileAt(e);
      if (k !== null && k !== this.index) { this.index = k; this.draw(); }
    });
    this.el.tiles.addEventListener("click", (e) => {
      const k = this.tileAt(e);
      if (k === null) return;
      this.index = k; this.draw();
      this.send({ row: Math.floor(k / this.gw), col: k % this.gw, at: Date.now() });
    });
    this.el.big.addEventListener("pointermove", (e) => this.onBigMove(e));
    this.el.big.addEventListener("pointerleave", () => vvHideTip(this.el.tip));
  }

  committed() { this.fromCommit = true; }

  setPayload(payload) {
    const h = payload.header, s = payload.sections;
    [this.gh, this.gw] = h.grid;
    this.count = h.count;
    const n = this.gh * this.gw;
    this.maps = new Float32Array(this.count * n);
    for (let k = 0; k < this.count; k++) this.maps.set(vvRow(s, "maps", k, n), k * n);
    this.range = h.value_range;
    if (this.fromCommit) { this.index = this.data.committed.row * this.gw + this.data.committed.col; this.fromCommit = false; }
    this.el.caption.textContent = this.t("caption");
    this.drawTiles();
    this.draw();
  }

  tileAt(event) {
    if (!this.maps) return null;
    const cell = vvCellAt(this.el.tiles, event, this.gh, this.gw);
    return cell ? cell[0] * this.gw + cell[1] : null;
  }

  mapRange(values) {
    if (this.range) return this.range;
    let lo = Infinity, hi = -Infinity;
    for (const v of values) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return [lo, hi];
  }

  drawTiles() { // every position's map, one tile each, in grid order
    const gh = this.gh, gw = this.gw, n = gh * gw;
    const image = new ImageData(gw * (gw + 1), gh * (gh + 1));
    for (let k = 0; k < this.count; k++) {
      const values = this.maps.subarray(k * n, (k + 1) * n), [lo, hi] = this.mapRange(values);
      vvPaint(image, values, gh, gw, this.lut, lo, hi, (k % gw) * (gw + 1), Math.floor(k / gw) * (gh + 1));
    }
    this.tileImage = vvPixels(image);
  }

  draw() {
    if (!this.maps) return;
    const gh = this.gh, gw = this.gw, n = gh * gw, k = this.index, [w, h] = vvFit(gw / gh, VT_SIDE);
    const tw = w / gw, th = h / gh, r = Math.floor(k / gw), c = k % gw;
    const t = vvCanvas(this.el.tiles, w, h);
    vvBlit(t, this.tileImage, 0, 0, w, h);
    t.lineWidth = 2; t.strokeStyle = "#e4572e";
    t.strokeRect(c * tw + 1, r * th + 1, tw - 2, th - 2);
    const values = this.maps.subarray(k * n, (k + 1) * n), [lo, hi] = this.mapRange(values);
    const b = vvCanvas(this.el.big, w, h);
    this.cellCanvas = vvDrawMap(b, values, gh, gw, this.lut, lo, hi, [0, 0, w, h], { scratch: this.cellCanvas });
    b.lineWidth = 2; b.strokeStyle = "#fff";
    b.strokeRect(c * tw + 1, r * th + 1, tw - 2, th - 2);
    this.el.title.textContent = this.t("title", { row: r, col: c });
    this.el.note.textContent = this.t("note", { lo: lo.toFixed(2), hi: hi.toFixed(2) });
    this.drawCount += 1;
    vvProbe("Tiles", () => ({ index: k, grid: [gh, gw], values: Array.from(values), draw_count: this.drawCount,
                              committed: this.data.committed }));
  }

  onBigMove(event) {
    if (!this.maps) return;
    const cell = vvCellAt(this.el.big, event, this.gh, this.gw);
    if (!cell) return;
    const v = this.maps[this.index * this.gh * this.gw + cell[0] * this.gw + cell[1]];
    vvShowTip(this.el.tip, event, this.t("tip", { row: cell[0], col: cell[1], value: v.toFixed(3) }));
  }
}

export default vvMount(VTExplorer);
