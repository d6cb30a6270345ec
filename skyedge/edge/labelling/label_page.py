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
</style>
</head>
<body>
<header>
 <span id="progress">loading…</span>
 <label>guess <select id="filter-class"><option value="">any</option></select></label>
 <label>confidence below <input id="filter-conf" type="number" min="0" max="1" step="0.05" value="1.01" style="width:5em"></label>
 <label><input id="filter-unlabelled" type="checkbox"> unlabelled only</label>
 <span id="keys"></span>
 <span id="counts"></span>
 <span id="error"></span>
</header>
<div id="grid"></div>
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
  const unlabelled = document.getElementById("filter-unlabelled").checked;
  return state.items.filter(it => (!cls || it.predicted === cls)
    && (it.confidence === null || it.confidence === undefined || it.confidence < conf)
    && (!unlabelled || it.label === null));
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
    card.append(img, guess, label);
    card.addEventListener("click", ev => clickCard(it.id, ev.shiftKey, shown));
    return card;
  }));
  document.getElementById("progress").textContent =
    `labelled ${state.labelled} of ${state.total} · showing ${shown.length} · selected ${selected.size}`;
  document.getElementById("keys").innerHTML = state.classes.slice(0, 9)
    .map((c, i) => `<kbd>${i + 1}</kbd> ${c}`).join(" ") + " <kbd>n</kbd> new <kbd>0</kbd> clear <kbd>u</kbd> undo <kbd>a</kbd> all";
  document.getElementById("counts").textContent = Object.entries(state.counts).map(([c, n]) => `${c}: ${n}`).join(" · ");
  const filter = document.getElementById("filter-class");
  const guesses = [...new Set(state.items.map(it => it.predicted).filter(Boolean))];
  if (filter.options.length !== guesses.length + 1) {
    filter.replaceChildren(new Option("any", ""), ...guesses.map(g => new Option(g, g)));
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

document.addEventListener("keydown", async ev => {
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
  else if (ev.key === "Escape") { selected.clear(); render(); }
});
for (const id of ["filter-class", "filter-conf", "filter-unlabelled"]) {
  document.getElementById(id).addEventListener("change", render);
  document.getElementById(id).addEventListener("input", render);
}
call("GET", "/api/state").then(s => { state = s; render(); });
</script>
</body>
</html>
"""
