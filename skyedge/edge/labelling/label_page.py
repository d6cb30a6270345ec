"""The labelling page served by ``skyedge label`` (one HTML document with its script and style)."""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>skyedge label</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 0; background: #111; color: #ddd; }
 header { position: sticky; top: 0; background: #222; padding: 8px 12px; z-index: 1; }
 header span, header label { margin-right: 14px; }
 #keys kbd { background: #333; border: 1px solid #555; border-radius: 3px; padding: 0 4px; }
 #grid { display: flex; flex-wrap: wrap; gap: 6px; padding: 10px; }
 .card { width: 170px; background: #1c1c1c; border: 3px solid #1c1c1c; border-radius: 4px; cursor: pointer; }
 .card.selected { border-color: #4aa3ff; }
 .card img { width: 160px; height: 160px; object-fit: contain; display: block; margin: 2px auto; background: #000; }
 .card .guess { font-size: 12px; padding: 0 4px; color: #aaa; }
 .card .label { font-size: 13px; padding: 2px 4px; font-weight: bold; color: #7fd37f; min-height: 1.2em; }
 #error { color: #ff7070; }
 .card .painted { color: #ffb347; font-weight: normal; }
 #painter { position: fixed; inset: 0; background: rgba(0, 0, 0, 0.92); z-index: 2; display: flex; flex-direction: column; }
 #painter[hidden] { display: none; }
 #painter .bar { padding: 8px 12px; background: #222; }
 #painter .stage { position: relative; margin: auto; }
 #painter .stage img, #painter .stage canvas { position: absolute; inset: 0; width: 100%; height: 100%; }
 #painter .stage canvas { cursor: crosshair; touch-action: none; }
</style>
</head>
<body>
<header>
 <span id="progress">loading…</span>
 <label>guess <select id="filter-class"><option value="">any</option></select></label>
 <label>confidence below <input id="filter-conf" type="number" min="0" max="1" step="0.05" value="1.01" style="width:5em"></label>
 <label>label <select id="filter-label"><option value="">any</option><option value="(none)">unlabelled</option></select></label>
 <span id="keys"></span>
 <span id="counts"></span>
 <span id="error"></span>
</header>
<div id="grid"></div>
<div id="painter" hidden>
 <div class="bar"><span id="paint-title"></span> · brush <b id="paint-brush">cloud</b> <span id="paint-size"></span> ·
  <kbd>c</kbd> cloud <kbd>x</kbd> clear sky <kbd>e</kbd> not judged <kbd>f</kbd> fill all <kbd>[</kbd> <kbd>]</kbd> size
  <kbd>s</kbd> save <kbd>Esc</kbd> cancel · <span id="paint-cover"></span></div>
 <div class="stage" id="paint-stage"><img id="paint-img" alt=""><canvas id="paint-mask"></canvas></div>
</div>
<script>
"use strict";
let state = {classes: [], items: []};
let selected = new Set();
let lastClicked = null;
const undo = [];

async function call(method, url, body) {
  const r = await fetch(url, {method, headers: {"Content-Type": "application/json"}, body: body && JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) { document.getElementById("error").textContent = data.error; throw new Error(data.error); }
  document.getElementById("error").textContent = "";
  return data;
}

function visible() {
  const cls = document.getElementById("filter-class").value;
  const conf = parseFloat(document.getElementById("filter-conf").value);
  // "(none)" cannot be a class name (lower-case letters, digits, _ and -): the frames not labelled yet.
  const lab = document.getElementById("filter-label").value;
  return state.items.filter(it => (!cls || it.predicted === cls)
    && (it.confidence === null || it.confidence === undefined || it.confidence < conf)
    && (!lab || it.label === (lab === "(none)" ? null : lab)));
}

function render() {
  const grid = document.getElementById("grid");
  const shown = visible();
  for (const id of [...selected]) if (!shown.some(it => it.id === id)) selected.delete(id);
  grid.replaceChildren(...shown.map(it => {
    const card = document.createElement("div");
    card.className = "card" + (selected.has(it.id) ? " selected" : "");
    card.dataset.id = it.id;
    card.title = it.file;
    const img = document.createElement("img");
    img.src = "/thumb/" + it.id; img.alt = it.file; img.loading = "lazy";
    const guess = document.createElement("div");
    guess.className = "guess";
    guess.textContent = it.predicted ? `${it.predicted} ${(100 * (it.confidence ?? 0)).toFixed(0)}%` : "no guess";
    const label = document.createElement("div");
    label.className = "label"; label.textContent = it.label ?? "";
    if (it.painted) {
      const mark = document.createElement("span");
      mark.className = "painted"; mark.textContent = it.painted_by === "stars" ? " · cloud painted by the stars" : " · cloud painted";
      label.append(mark);
    }
    card.append(img, guess, label);
    card.addEventListener("click", ev => clickCard(it.id, ev.shiftKey, shown));
    return card;
  }));
  document.getElementById("progress").textContent =
    `labelled ${state.labelled} of ${state.total} · showing ${shown.length} · selected ${selected.size}`;
  document.getElementById("keys").innerHTML = state.classes.slice(0, 9)
    .map((c, i) => `<kbd>${i + 1}</kbd> ${c}`).join(" ") + " <kbd>n</kbd> new <kbd>0</kbd> clear <kbd>u</kbd> undo <kbd>a</kbd> all <kbd>p</kbd> paint cloud";
  document.getElementById("counts").textContent = Object.entries(state.counts).map(([c, n]) => `${c}: ${n}`).join(" · ");
  const filter = document.getElementById("filter-class");
  const guesses = [...new Set(state.items.map(it => it.predicted).filter(Boolean))];
  if (filter.options.length !== guesses.length + 1) {
    filter.replaceChildren(new Option("any", ""), ...guesses.map(g => new Option(g, g)));
  }
  // By label: to check labels made elsewhere (skyedge star-labels' clear skies include thin cloud) class by class.
  const byLabel = document.getElementById("filter-label");
  if (byLabel.options.length !== state.classes.length + 2) {
    const keep = byLabel.value;
    byLabel.replaceChildren(new Option("any", ""), new Option("unlabelled", "(none)"), ...state.classes.map(c => new Option(c, c)));
    byLabel.value = keep;
  }
}

function clickCard(id, shift, shown) {
  if (shift && lastClicked !== null) {
    const ids = shown.map(it => it.id);
    const [a, b] = [ids.indexOf(lastClicked), ids.indexOf(id)].sort((x, y) => x - y);
    ids.slice(a, b + 1).forEach(i => selected.add(i));
  } else if (selected.has(id)) { selected.delete(id); } else { selected.add(id); }
  lastClicked = id;
  render();
}

async function label(name) {
  const ids = [...selected];
  if (!ids.length) return;
  undo.push(ids.map(id => [id, state.items[id].label]));
  state = await call("POST", "/api/label", {ids, label: name});
  selected.clear();
  render();
}

async function undoLast() {
  const step = undo.pop();
  if (!step) return;
  const byLabel = new Map();
  for (const [id, previous] of step) {
    const key = JSON.stringify(previous);
    if (!byLabel.has(key)) byLabel.set(key, []);
    byLabel.get(key).push(id);
  }
  for (const [key, ids] of byLabel) state = await call("POST", "/api/label", {ids, label: JSON.parse(key)});
  render();
}

// The painter: one labelled frame at a time; the mask is one byte per view pixel, 0 clear sky, 255 cloud, 128 not
// judged (what adapt reads, docs in skyedge/painted_cloud.py); saved as a grey PNG.
const BRUSHES = {c: ["cloud", 255], x: ["clear sky", 0], e: ["not judged", 128]};
const COLOURS = {255: [255, 80, 60, 110], 0: [60, 140, 255, 70]};
let paint = null;

function paintStatus() {
  document.getElementById("paint-brush").textContent = BRUSHES[paint.brush][0];
  document.getElementById("paint-size").textContent = `radius ${paint.radius} px`;
  let cloud = 0, judged = 0;
  for (const v of paint.mask) { if (v !== 128) { judged++; if (v === 255) cloud++; } }
  document.getElementById("paint-cover").textContent = judged
    ? `cloud ${(100 * cloud / judged).toFixed(0)}% of the judged sky` : "nothing judged yet";
}

function paintDraw() {
  const image = paint.ctx.createImageData(paint.w, paint.h);
  for (let i = 0; i < paint.mask.length; i++) {
    const c = COLOURS[paint.mask[i]];
    if (c) image.data.set(c, 4 * i);
  }
  paint.ctx.putImageData(image, 0, 0);
  paintStatus();
}

function dab(x, y) {
  const r = paint.radius, value = BRUSHES[paint.brush][1];
  for (let j = Math.max(0, Math.floor(y - r)); j <= Math.min(paint.h - 1, Math.ceil(y + r)); j++) {
    for (let i = Math.max(0, Math.floor(x - r)); i <= Math.min(paint.w - 1, Math.ceil(x + r)); i++) {
      if ((i - x) ** 2 + (j - y) ** 2 <= r * r) paint.mask[j * paint.w + i] = value;
    }
  }
}

function paintAt(ev, start) {
  const box = paint.canvas.getBoundingClientRect();
  const x = (ev.clientX - box.left) * paint.w / box.width, y = (ev.clientY - box.top) * paint.h / box.height;
  // A fast mouse skips pixels between events: dab along the stroke so it has no gaps.
  const from = start || !paint.last ? {x, y} : paint.last;
  const steps = Math.max(1, Math.ceil(Math.hypot(x - from.x, y - from.y) / Math.max(1, paint.radius / 2)));
  for (let k = 1; k <= steps; k++) dab(from.x + (x - from.x) * k / steps, from.y + (y - from.y) * k / steps);
  paint.last = {x, y};
  if (!paint.pending) { paint.pending = true; requestAnimationFrame(() => { paint.pending = false; paintDraw(); }); }
}

async function openPainter() {
  if (selected.size !== 1) { document.getElementById("error").textContent = "select one frame to paint"; return; }
  const it = state.items[[...selected][0]];
  if (it.label === null) { document.getElementById("error").textContent = "label the frame before painting its cloud"; return; }
  const img = document.getElementById("paint-img");
  img.src = "/view/" + it.id;
  try { await img.decode(); }
  catch (e) { document.getElementById("error").textContent = `${it.file}: cannot show the frame to paint`; return; }
  const w = img.naturalWidth, h = img.naturalHeight;
  const canvas = document.getElementById("paint-mask");
  canvas.width = w; canvas.height = h;
  const fit = Math.min((window.innerWidth - 24) / w, (window.innerHeight - 70) / h);
  const stage = document.getElementById("paint-stage");
  stage.style.width = `${w * fit}px`; stage.style.height = `${h * fit}px`;
  paint = {id: it.id, w, h, canvas, ctx: canvas.getContext("2d"), mask: new Uint8Array(w * h).fill(128),
           brush: "c", radius: Math.max(2, Math.round(Math.max(w, h) / 40)), down: false, pending: false};
  const r = await fetch("/mask/" + it.id);
  if (!r.ok && r.status !== 404) {  // a saved mask adapt could not read either: said, not painted over unseen
    paint = null; document.getElementById("error").textContent = (await r.json()).error; return;
  }
  if (r.ok) {
    const saved = new Image();
    saved.src = URL.createObjectURL(await r.blob());
    await saved.decode();
    const c = document.createElement("canvas"); c.width = w; c.height = h;
    const cx = c.getContext("2d"); cx.drawImage(saved, 0, 0, w, h);
    const px = cx.getImageData(0, 0, w, h).data;
    for (let i = 0; i < w * h; i++) paint.mask[i] = px[4 * i] < 64 ? 0 : px[4 * i] > 191 ? 255 : 128;
  }
  document.getElementById("paint-title").textContent = `${it.file} (${it.label})`;
  document.getElementById("painter").hidden = false;
  paintDraw();
}

async function savePainter() {
  const c = document.createElement("canvas"); c.width = paint.w; c.height = paint.h;
  const cx = c.getContext("2d"), image = cx.createImageData(paint.w, paint.h);
  for (let i = 0; i < paint.mask.length; i++) image.data.set([paint.mask[i], paint.mask[i], paint.mask[i], 255], 4 * i);
  cx.putImageData(image, 0, 0);
  const png = await new Promise(done => c.toBlob(done, "image/png"));
  const r = await fetch("/api/mask/" + paint.id, {method: "POST", headers: {"Content-Type": "image/png"}, body: png});
  const data = await r.json();
  if (!r.ok) { document.getElementById("error").textContent = data.error; return; }
  state = data; closePainter();
}

function closePainter() { paint = null; selected.clear(); document.getElementById("painter").hidden = true; render(); }

const paintCanvas = document.getElementById("paint-mask");
// Pointer events: a mouse, a finger on a tablet or a pen paint alike.
paintCanvas.addEventListener("pointerdown", ev => {
  paint.down = true; paintCanvas.setPointerCapture(ev.pointerId); paintAt(ev, true);
});
paintCanvas.addEventListener("pointermove", ev => { if (paint && paint.down) paintAt(ev); });
window.addEventListener("pointerup", () => { if (paint) paint.down = false; });

document.addEventListener("keydown", async ev => {
  if (paint) {
    if (ev.key in BRUSHES) { paint.brush = ev.key; paintStatus(); }
    else if (ev.key === "f") { paint.mask.fill(BRUSHES[paint.brush][1]); paintDraw(); }
    else if (ev.key === "[") { paint.radius = Math.max(1, Math.round(paint.radius / 1.5)); paintStatus(); }
    else if (ev.key === "]") { paint.radius = Math.round(paint.radius * 1.5) + 1; paintStatus(); }
    else if (ev.key === "s" || ev.key === "Enter") { await savePainter(); }
    else if (ev.key === "Escape") { closePainter(); }
    return;
  }
  if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
  if (ev.key >= "1" && ev.key <= "9") {
    const name = state.classes[Number(ev.key) - 1];
    if (name) await label(name);
  } else if (ev.key === "0" || ev.key === "Backspace") { await label(null); }
  else if (ev.key === "n") {
    if (!selected.size) return;
    const name = prompt("new class name (lower-case letters, digits, _ and -)");
    if (name) await label(name);
  } else if (ev.key === "u" || (ev.key === "z" && (ev.ctrlKey || ev.metaKey))) { await undoLast(); }
  else if (ev.key === "a") { visible().forEach(it => selected.add(it.id)); render(); }
  else if (ev.key === "p") { await openPainter(); }
  else if (ev.key === "Escape") { selected.clear(); render(); }
});
for (const id of ["filter-class", "filter-conf", "filter-label"]) {
  document.getElementById(id).addEventListener("change", render);
  document.getElementById(id).addEventListener("input", render);
}
call("GET", "/api/state").then(s => { state = s; render(); });
</script>
</body>
</html>
"""
