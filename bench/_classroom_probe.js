// Arms one page: at the epoch instant `at` (ms) it puts `name` into the upload box and fires its change event,
// then looks for the Overview's rollout figure (in the first animation frame after each change of the page, or in
// every frame with everyFrame). The first frame that draws one (other
// than the one on the page when armed, after an earlier upload) ends the probe:
// window.__vvClass = {t0 (the upload event), t1 (that frame), shown: what the figure and its caption say,
// t_informed (the first frame showing the session's place in line), notices (each different text of it, in order)
// and notice_at (the frame that first showed each),
// upload (when the upload request started and was answered), ws (when the page sent and got websocket messages;
// the socket is heard from its first send after arming)}. All times are epoch ms.
([sel, upload, name, b64, at, everyFrame]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const file = new File([bytes], name, {type: 'image/png'});
    const probe = window.__vvClass = {name, t0: null, t1: null, t_informed: null, notices: [], notice_at: [],
                                      shown: null, upload: null, error: null, ws: {sent: [], got: []}};
    const socket = WebSocket.prototype;  // when the page sends and gets websocket messages after the upload event
    if (!socket.__vvSend) {
        socket.__vvSend = socket.send;
        socket.send = function (data) {
            const p = window.__vvClass, now = performance.timeOrigin + performance.now();
            if (p && p.t0 !== null && p.ws.sent.length < 100) p.ws.sent.push(now);
            if (!this.__vvHeard) {
                this.__vvHeard = true;
                this.addEventListener('message', () => {
                    const q = window.__vvClass, at = performance.timeOrigin + performance.now();
                    if (q && q.t0 !== null && q.ws.got.length < 3000) q.ws.got.push(at);
                });
            }
            return socket.__vvSend.call(this, data);
        };
    }
    const hash = (text) => {  // FNV-1a, 32 bits
        let h = 0x811c9dc5;
        for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
        return h.toString(16);
    };
    const shown = () => {  // [width, height, heatmap hash, captions] of the rollout figure drawn now, or null
        const gd = document.querySelector(sel);
        const heat = gd && gd._fullData && gd._fullData.find((t) => t.type === 'heatmap');
        const [xr, yr] = ['xaxis', 'yaxis'].map((a) => gd && gd.layout && gd.layout[a] && gd.layout[a].range);
        if (!heat || !heat.z || !xr || !yr) return null;
        const z = JSON.stringify(Array.from(heat.z, (row) => Array.from(row, (v) => Number(v).toPrecision(5))));
        const captions = Array.from(document.querySelectorAll('[data-testid=stMain] [data-testid=stImageCaption], '
            + '[data-testid=stMain] [data-testid=stCaptionContainer]'), (e) => e.innerText);
        return {width: Math.round(Math.max(...xr)), height: Math.round(Math.max(...yr)), heat: hash(z), captions};
    };
    const notice = () => {  // the text of the page's place in line (vitviz_app.waiting: an alert with an hourglass)
        for (const e of document.querySelectorAll('[data-testid=stMain] [data-testid=stAlert]')) {
            const text = e.innerText.trim();  // the icon's ligature name comes first, then the text
            if (text.startsWith('hourglass_top')) return text.replace('hourglass_top', '').trim();
        }
        return null;
    };
    const before = shown();
    // Reading a figure costs the page a hash of its heatmap and a layout for the captions' text: done only in
    // a frame where Plotly has drawn something new (a new element or a new _fullData), as a student's page does
    // not pay for it. The upload request's times come from the page's resource timing.
    const drawn = () => { const gd = document.querySelector(sel); return [gd, gd && gd._fullData]; };
    let seen = before ? drawn() : [null, null];  // the figure last read completely
    new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
            if (!probe.upload && e.name.includes('/_stcore/upload_file') && probe.t0 !== null
                && performance.timeOrigin + e.startTime >= probe.t0) {
                probe.upload = [performance.timeOrigin + e.startTime, performance.timeOrigin + e.responseEnd];
            }
        }
    }).observe({type: 'resource'});
    // A look costs a layout (the notice's text); by default the page looks only in the first frame after its DOM
    // changed (a MutationObserver), not in every frame: 30 idle pages looking 60 times a second are the bench's own
    // load on the server's cores, which no student's page carries. everyFrame: look in every frame (the old probe).
    let pending = false;
    const observer = new MutationObserver(() => {
        if (!pending && probe.t1 === null) { pending = true; requestAnimationFrame(poll); }
    });
    const poll = (ts) => {
        pending = false;
        const [gd, data] = drawn();
        const now = gd !== seen[0] || data !== seen[1] ? shown() : null, told = notice();
        if (now) seen = [gd, data];
        if (told !== null) {
            if (probe.t_informed === null) probe.t_informed = performance.timeOrigin + ts;
            if (probe.notices.length < 40 && probe.notices[probe.notices.length - 1] !== told) {
                probe.notices.push(told);
                probe.notice_at.push(performance.timeOrigin + ts);
            }
        }
        const changed = now && (!before || ['width', 'height', 'heat'].some((k) => now[k] !== before[k]));
        if (changed) { Object.assign(probe, {t1: performance.timeOrigin + ts, shown: now}); observer.disconnect(); }
        else if (everyFrame) requestAnimationFrame(poll);
    };
    const fire = () => {
        const input = document.querySelector(upload);
        if (!input) { probe.error = 'no upload box'; return; }
        const files = new DataTransfer();
        files.items.add(file);
        input.files = files.files;
        probe.t0 = performance.timeOrigin + performance.now();
        input.dispatchEvent(new Event('input', {bubbles: true}));
        input.dispatchEvent(new Event('change', {bubbles: true}));
        if (!everyFrame) observer.observe(document.body, {subtree: true, childList: true, characterData: true,
                                                          attributes: true});
        requestAnimationFrame(poll);
    };
    setTimeout(fire, Math.max(0, at - Date.now()));
}
