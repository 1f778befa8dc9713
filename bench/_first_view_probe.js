// Installed in every document of a first-view visit (an init script): the page times its own first view, so that
// the bench does not have to ask it from outside while it loads. window.__vvView.watch(selectors) starts a watch:
// from then on, in the first animation frame after each change of the document, it looks whether every selector
// matches; the first frame where they all do ends the watch (drawn: when that frame's callbacks ran, epoch ms, before its paint). It also notes
// the first frame with the app's sidebar (shell) and the first title of the start-up progress box seen (a
// Streamlit status box whose summary says "Starting vitviz…"). A click's event time is kept (clicked, epoch ms),
// for a view reached through the navigation. Reading textContent and matching selectors needs no layout, so a
// look costs the page almost nothing; looking only after a change costs an idle page nothing.
(() => {
    const epoch = (t) => performance.timeOrigin + t;
    const view = window.__vvView = {selectors: null, drawn: null, shell: null, title: null, clicked: null};
    let pending = false;
    const look = () => {
        pending = false;
        // the callback's own time, not the frame's timestamp: that is the frame's start, which Chromium may set
        // before the task that changed the page ran
        const ts = performance.now();
        if (view.shell === null && document.querySelector('[data-testid=stSidebar]')) view.shell = epoch(ts);
        if (view.title === null) {
            for (const e of document.querySelectorAll('[data-testid=stExpander] summary')) {
                const text = e.textContent.trim();
                const at = text.indexOf('Starting vitviz');
                if (at >= 0) { view.title = text.slice(at); break; }
            }
        }
        if (view.selectors !== null && view.drawn === null
            && view.selectors.every((s) => document.querySelector(s) !== null)) view.drawn = epoch(ts);
    };
    const changed = () => {
        if (!pending) { pending = true; requestAnimationFrame(look); }
    };
    view.watch = (selectors) => { view.selectors = selectors; view.drawn = null; changed(); };
    document.addEventListener('click', (event) => { view.clicked = epoch(event.timeStamp); }, true);
    new MutationObserver(changed).observe(document, {subtree: true, childList: true, attributes: true});
})();
