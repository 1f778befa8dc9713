// Drawing canvas: a square sketch pad for the mouse, a pen or a finger (pointer events). Strokes are kept as
// vectors, so undo redraws from them; the sketch goes to the server as a PNG when a stroke ends (or after undo,
// clear or a new background), never on a pointer move.
//
// Data (drawing_canvas.py): committed {size, strokes, pen, width, background} (the sketch the page keeps, or a
// new pad's settings), text {pen, width, background, undo, clear, canvas}; no payload, no colours. What it sends
// goes back as the state value "drawing". Test probe: Drawing.

const VD_MAX_POINTS = 20000; // in all strokes: ink beyond it is not taken (the payload stays small)
const VD_MAX_STROKES = 500;
const VD_MIN_STEP = 0.75; // PNG pixels between kept points (a fine pointer reports far more)

function vdColour(value, fallback) {
  return typeof value === "string" && /^#[0-9a-fA-F]{6}$/.test(value) ? value.toLowerCase() : fallback;
}

function vdStrokes(value) { // strokes handed back by the server: keep only well-formed ones
  if (!Array.isArray(value)) return [];
  return value.filter((s) => s && Array.isArray(s.p) && s.p.length >= 2 && s.p.every(Number.isFinite))
    .slice(0, VD_MAX_STROKES)
    .map((s) => ({ c: vdColour(s.c, "#000000"), w: Math.max(1, Math.min(64, Number(s.w) || 8)), p: s.p.slice() }));
}

function vdPaint(ctx, stroke) {
  const p = stroke.p;
  ctx.strokeStyle = ctx.fillStyle = stroke.c;
  ctx.lineWidth = stroke.w;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  if (p.length === 2) { // a tap: a dot
    ctx.beginPath(); ctx.arc(p[0], p[1], stroke.w / 2, 0, 2 * Math.PI); ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(p[0], p[1]);
  for (let i = 2; i < p.length; i += 2) ctx.lineTo(p[i], p[i + 1]);
  ctx.stroke();
}

class VDPad {
  constructor(root) {
    const box = document.createElement("div");
    box.className = "vd-pad vz-view";
    box.innerHTML = `<canvas class="vd-canvas" tabindex="0" role="img"></canvas>
      <div class="vd-tools">
        <label class="vd-tool"><span class="vd-pen-label"></span><input type="color" class="vd-pen"></label>
        <label class="vd-tool vd-width-tool"><span class="vd-width-label"></span>
          <input type="range" class="vd-width" min="2" max="40" step="1"></label>
        <label class="vd-tool"><span class="vd-bg-label"></span><input type="color" class="vd-bg"></label>
        <button type="button" class="vd-undo"></button><button type="button" class="vd-clear"></button>
      </div>`;
    root.appendChild(box);
    const $ = (sel) => box.querySelector(sel);
    this.canvas = $(".vd-canvas");
    this.pen = $(".vd-pen");
    this.width = $(".vd-width");
    this.bg = $(".vd-bg");
    this.undoButton = $(".vd-undo");
    this.clearButton = $(".vd-clear");
    this.labelled = { ".vd-pen-label": "pen", ".vd-width-label": "width", ".vd-bg-label": "background" };
    this.box = box;
    this.strokes = [];
    this.current = null;
    this.adopted = false;
    this.sent = 0;
    this.send = () => {};
    this.stop = () => {};
    this.canvas.addEventListener("pointerdown", (e) => this.start(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    for (const end of ["pointerup", "pointercancel"]) this.canvas.addEventListener(end, (e) => this.end(e));
    this.canvas.addEventListener("blur", () => this.canvas.classList.remove("vd-quiet"));
    this.canvas.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); this.undo(); }
    });
    this.undoButton.addEventListener("click", () => this.undo());
    this.clearButton.addEventListener("click", () => this.clear());
    this.bg.addEventListener("input", () => this.redraw());
    this.bg.addEventListener("change", () => this.commit());
    this.width.addEventListener("input", () => { this.width.title = this.width.value; });
    new ResizeObserver(() => this.redraw()).observe(this.canvas);
  }

  update(data, send) {
    this.send = send;
    const kept = data.committed || {}, labels = data.text || {};
    this.size = Number(kept.size) || 256;
    for (const [sel, name] of Object.entries(this.labelled)) {
      this.box.querySelector(sel).textContent = labels[name] || "";
    }
    this.undoButton.textContent = labels.undo || "";
    this.clearButton.textContent = labels.clear || "";
    this.canvas.setAttribute("aria-label", labels.canvas || "");
    this.canvas.title = labels.canvas || "";
    if (!this.adopted) { // first mount (or back from another page): take up the kept sketch
      this.adopted = true;
      this.strokes = vdStrokes(kept.strokes);
      this.pen.value = vdColour(kept.pen, "#000000");
      this.width.value = String(Number(kept.width) || 12);
      this.bg.value = vdColour(kept.background, "#ffffff");
      this.width.title = this.width.value;
    }
    this.redraw();
  }

  point(event) { // pointer position in PNG pixels
    const box = this.canvas.getBoundingClientRect();
    const at = (v) => Math.round(Math.max(0, Math.min(this.size, v * this.size)) * 10) / 10; // 0.1 px steps
    return [at((event.clientX - box.left) / box.width), at((event.clientY - box.top) / box.height)];
  }

  start(event) {
    if (this.current || event.button > 0) return; // one pointer at a time: the main button, a pen or a finger
    event.preventDefault();
    this.canvas.classList.add("vd-quiet"); // focused by drawing, not by Tab: no focus ring
    this.canvas.focus({ preventScroll: true }); // for Ctrl+Z
    this.canvas.setPointerCapture(event.pointerId);
    this.current = { c: vdColour(this.pen.value, "#000000"), w: Number(this.width.value) || 12, p: this.point(event) };
    this.pointerId = event.pointerId;
    this.paintTail(0);
  }

  move(event) {
    if (!this.current || event.pointerId !== this.pointerId) return;
    event.preventDefault();
    const from = this.current.p.length - 2;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    const p = this.current.p, room = 2 * VD_MAX_POINTS - this.points;
    for (const e of events.length ? events : [event]) {
      if (p.length >= room) break;
      const [x, y] = this.point(e);
      if (Math.hypot(x - p[p.length - 2], y - p[p.length - 1]) >= VD_MIN_STEP) p.push(x, y);
    }
    this.paintTail(from);
  }

  end(event) {
    if (!this.current || event.pointerId !== this.pointerId) return;
    const stroke = this.current;
    this.current = null;
    if (this.strokes.length < VD_MAX_STROKES) this.strokes.push(stroke);
    this.commit();
  }

  paintTail(from) { // draw only what the stroke gained since point `from` (a full redraw per move would lag)
    const ctx = this.context();
    const p = this.current.p;
    vdPaint(ctx, { c: this.current.c, w: this.current.w, p: p.length === 2 ? p : p.slice(Math.max(0, from - 2)) });
  }

  context() { // the on-screen canvas, scaled so that one unit is one PNG pixel
    const ctx = this.canvas.getContext("2d");
    const scale = this.canvas.width / this.size;
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    return ctx;
  }

  get points() { // coordinates held by the finished strokes
    return this.strokes.reduce((n, s) => n + s.p.length, 0);
  }

  redraw() {
    const css = this.canvas.getBoundingClientRect().width || this.size;
    const pixels = Math.max(1, Math.round(css * (window.devicePixelRatio || 1)));
    if (this.canvas.width !== pixels) { this.canvas.width = pixels; this.canvas.height = pixels; }
    this.render(this.context());
    if (this.current) vdPaint(this.context(), this.current);
    this.undoButton.disabled = this.clearButton.disabled = this.strokes.length === 0;
    vvProbe("Drawing", () => ({ strokes: this.strokes.length, sent: this.sent, background: this.bg.value,
                                pen: this.pen.value, width: Number(this.width.value) }));
  }

  render(ctx) {
    ctx.fillStyle = vdColour(this.bg.value, "#ffffff");
    ctx.fillRect(0, 0, this.size, this.size);
    for (const stroke of this.strokes) vdPaint(ctx, stroke);
  }

  undo() { if (this.strokes.length) { this.strokes.pop(); this.commit(); } }

  clear() { if (this.strokes.length) { this.strokes = []; this.commit(); } }

  png() { // the sketch at its own size, whatever the screen's
    const out = document.createElement("canvas");
    out.width = out.height = this.size;
    this.render(out.getContext("2d"));
    return out.toDataURL("image/png");
  }

  commit() { // redraw and send the sketch (an empty pad sends no image)
    this.redraw();
    this.sent += 1;
    this.send({ png: this.strokes.length ? this.png() : null, strokes: this.strokes, background: this.bg.value,
                pen: this.pen.value, width: Number(this.width.value), at: Date.now() });
    this.redraw();
  }
}

export default vvMount(VDPad, "drawing");
