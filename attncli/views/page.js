"use strict";
// attncli's interactive page: the head view, the model view and the matrix of one run's attention.
// Everything it needs is in the #attncli-data element; it fetches nothing.
(async function () {
  const data = JSON.parse(document.getElementById("attncli-data").textContent);

  async function inflate(base64) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  const raw = await inflate(data.attention);
  const values = data.bits === 16 ? new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2) : raw;
  const top = 2 ** data.bits - 1;
  const masks = data.masks ? await inflate(data.masks) : null;
  const T = data.tokens.length, L = data.layers, H = data.heads;
  const ROW = 20; // pixels a token takes in the head view
  const FAINT = 0.01; // lines for weights below this are not drawn

  // A run of ‖α v W_O‖ norms travels as fractions of its largest norm, data.largest_norm: its scales end there.
  const largest = data.largest_norm || 1;
  const quantity = data.largest_norm ? "‖αv W_O‖" : "weight";
  const weight = (l, h, q, k) => (values[((l * H + h) * T + q) * T + k] / top) * largest;
  const seen = (l, q, k) => {
    if (!masks) return true;
    const i = (l * T + q) * T + k;
    return ((masks[i >> 3] >> (7 - (i & 7))) & 1) === 1;
  };
  // One head's weight, or with head "all" the mean of the layer's heads.
  const shown = (l, h, q, k) => {
    if (h !== "all") return weight(l, h, q, k);
    let sum = 0;
    for (let g = 0; g < H; g++) sum += weight(l, g, q, k);
    return sum / H;
  };

  const V = data.viridis;
  function colour(fraction) {
    const at = Math.min(Math.max(fraction, 0), 1) * (V.length - 1);
    const low = Math.min(Math.floor(at), V.length - 2);
    const t = at - low;
    return V[low].map((c, i) => Math.round(c + t * (V[low + 1][i] - c)));
  }
  // The log scale starts at 0.001, as in the terminal; a page whose weights travel in 8 bits holds
  // nothing between 0 and half a step, so its scale starts there and says so.
  const LOG_FLOOR = Math.max(data.log_floor, 0.5 / top);
  // Where a weight falls on the colour scale: as the terminal's widgets.heatmap.fractions.
  function fraction(w, rowMax) {
    if (state.scale === "row") return rowMax > 0 ? w / rowMax : 0;
    const share = w / largest;
    if (state.scale === "log") return (Math.log10(Math.max(share, LOG_FLOOR)) - Math.log10(LOG_FLOOR)) / -Math.log10(LOG_FLOOR);
    return Math.min(Math.max(share, 0), 1);
  }
  const headColour = (h) => `hsl(${Math.round((h * 360) / H)}, 70%, 50%)`;

  // It opens where the command pointed: its layer, head and colour scale, and query's token held.
  const start = data.start;
  const state = { view: "heads", layer: start.layer, head: start.head, scale: start.scale, active: null, pinned: false };
  if (start.query !== undefined) Object.assign(state, { active: { side: "query", index: start.query }, pinned: true });
  const $ = (id) => document.getElementById(id);

  // Controls
  for (let l = 0; l < L; l++) $("layer").add(new Option(`${l}`, `${l}`));
  for (let h = 0; h < H; h++) $("head").add(new Option(`${h}`, `${h}`));
  $("head").add(new Option("all", "all"));
  $("layer").value = `${state.layer}`; $("head").value = `${state.head}`; $("scale").value = state.scale;
  if (data.largest_norm) $("scale").options[0].text = "fixed 0–largest";
  $("layer").onchange = () => { state.layer = +$("layer").value; draw(); };
  $("head").onchange = () => { const v = $("head").value; state.head = v === "all" ? "all" : +v; draw(); };
  $("scale").onchange = () => { state.scale = $("scale").value; draw(); };
  document.querySelectorAll("nav button").forEach((button) => {
    button.onclick = () => choose(button.dataset.view);
  });
  function choose(view) {
    state.view = view;
    document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("chosen", b.dataset.view === view));
    document.querySelectorAll(".view").forEach((section) => { section.hidden = section.id !== view; });
    draw();
  }
  const precision = data.bits === 16 ? 4 : 3;
  const rounded = data.largest_norm
    ? `‖αv W_O‖ norms (Kobayashi et al., 2020): how much each key adds to a head's output, α·‖v W_O‖; rows need ` +
      `not sum to 1, and the fixed and log scales run to the largest, ${+largest.toPrecision(3)}. Rounded to 1/${top} of it ` +
      `(shown to ${precision} decimals; the JSON of --json has them exact; the log scale starts at ${+LOG_FLOOR.toPrecision(2)} of it). ` +
      `Head view: lines under ${FAINT} of the largest are not drawn; `
    : `Weights rounded to 1/${top} ` +
      `(shown to ${precision} decimals; the JSON of --json has them exact; the log scale starts at ${+LOG_FLOOR.toPrecision(2)}). ` +
      `Head view: lines under ${FAINT} are not drawn; `;
  $("note").textContent =
    `${data.model}: ${L} layers × ${H} heads, ${T} tokens. ` + rounded + "hover a token to isolate its lines, click to keep them.";

  // Head view: tokens in two columns, lines between them
  function tokenColumn(id, side) {
    const column = $(id);
    data.tokens.forEach((label, i) => {
      const token = document.createElement("div");
      token.className = "token" + (data.special[i] ? " special" : "");
      token.textContent = label;
      token.dataset.index = i;
      token.onmouseenter = () => { if (!state.pinned) { state.active = { side, index: i }; drawHeads(); } };
      token.onmouseleave = () => { if (!state.pinned) { state.active = null; drawHeads(); } };
      token.onclick = () => {
        const same = state.pinned && state.active && state.active.side === side && state.active.index === i;
        state.pinned = !same;
        state.active = same ? null : { side, index: i };
        drawHeads();
      };
      column.appendChild(token);
    });
  }
  tokenColumn("queries", "query");
  tokenColumn("keys", "key");

  function drawHeads() {
    const canvas = $("lines"), width = 240, scale = window.devicePixelRatio || 1;
    canvas.width = width * scale; canvas.height = T * ROW * scale;
    canvas.style.width = `${width}px`; canvas.style.height = `${T * ROW}px`;
    const ctx = canvas.getContext("2d");
    ctx.scale(scale, scale);
    const heads = state.head === "all" ? [...Array(H).keys()] : [state.head];
    const active = state.active;
    for (const h of heads) {
      ctx.strokeStyle = state.head === "all" ? headColour(h) : getComputedStyle(document.body).getPropertyValue("--accent");
      for (let q = 0; q < T; q++) {
        if (active && active.side === "query" && active.index !== q) continue;
        for (let k = 0; k < T; k++) {
          if (active && active.side === "key" && active.index !== k) continue;
          const w = weight(state.layer, h, q, k) / largest;
          if (w < FAINT) continue;
          ctx.globalAlpha = state.head === "all" ? w / Math.sqrt(heads.length) : w;
          ctx.lineWidth = 2;
          ctx.beginPath();
          ctx.moveTo(0, q * ROW + ROW / 2);
          ctx.lineTo(width, k * ROW + ROW / 2);
          ctx.stroke();
        }
      }
    }
    // The other column's tokens take the weight as their background; the hovered one is outlined.
    document.querySelectorAll(".token").forEach((token) => { token.style.background = ""; token.classList.remove("active"); });
    if (!active) return;
    const own = active.side === "query" ? "queries" : "keys", other = active.side === "query" ? "keys" : "queries";
    $(own).children[active.index].classList.add("active");
    [...$(other).children].forEach((token, j) => {
      const [q, k] = active.side === "query" ? [active.index, j] : [j, active.index];
      const w = shown(state.layer, state.head, q, k);
      token.style.background = `rgba(94, 201, 98, ${(w / largest).toFixed(3)})`;
      token.dataset.weight = w.toFixed(precision);
    });
  }

  // Model view: every layer × head as a thumbnail
  function drawGrid() {
    const grid = $("grid");
    grid.replaceChildren();
    grid.style.gridTemplateColumns = `auto repeat(${H}, 90px)`;
    for (let l = 0; l < L; l++) {
      const name = document.createElement("div");
      name.className = "rowname"; name.textContent = `layer ${l}`;
      grid.appendChild(name);
      for (let h = 0; h < H; h++) {
        const thumb = document.createElement("div");
        thumb.className = "thumb" + (l === state.layer && h === state.head ? " chosen" : "");
        thumb.dataset.layer = l; thumb.dataset.head = h;
        const canvas = document.createElement("canvas");
        canvas.width = T; canvas.height = T;
        paint(canvas.getContext("2d"), l, h, 1);
        thumb.append(canvas, `L${l} H${h}`);
        thumb.onclick = () => {
          state.layer = l; state.head = h;
          $("layer").value = `${l}`; $("head").value = `${h}`;
          choose("matrix");
        };
        grid.appendChild(thumb);
      }
    }
  }

  // Paints layer l, head h (or "all") at `cell` pixels a cell: masked cells are left clear.
  function paint(ctx, l, h, cell) {
    const image = ctx.createImageData(T * cell, T * cell);
    for (let q = 0; q < T; q++) {
      let rowMax = 0;
      if (state.scale === "row") for (let k = 0; k < T; k++) rowMax = Math.max(rowMax, shown(l, h, q, k));
      for (let k = 0; k < T; k++) {
        if (!seen(l, q, k)) continue;
        const [r, g, b] = colour(fraction(shown(l, h, q, k), rowMax));
        for (let y = q * cell; y < (q + 1) * cell; y++) {
          for (let x = k * cell; x < (k + 1) * cell; x++) {
            const at = (y * T * cell + x) * 4;
            image.data[at] = r; image.data[at + 1] = g; image.data[at + 2] = b; image.data[at + 3] = 255;
          }
        }
      }
    }
    ctx.putImageData(image, 0, 0);
  }

  // Matrix view: one head's weights, exact (as rounded) on hover, with the tokens along both sides
  // when the cells are tall enough to label (else their indices every tenth or fiftieth).
  const matrix = { cell: 1, left: 0, top: 0 };
  function drawMatrix() {
    const cell = Math.max(1, Math.min(24, Math.floor(Math.min(960, window.innerWidth - 260) / T)));
    const labelled = cell >= 11;
    const longest = Math.max(...data.tokens.map((label, i) => `${i} ${label}`.length));
    const margin = labelled ? Math.min(16 + longest * 7, 200) : 40;
    Object.assign(matrix, { cell, left: margin, top: margin });
    const canvas = $("cells"), ratio = window.devicePixelRatio || 1;
    const size = margin + T * cell + 4;
    canvas.width = size * ratio; canvas.height = size * ratio;
    canvas.style.width = `${size}px`; canvas.style.height = `${size}px`;
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    const cells = document.createElement("canvas");
    cells.width = T * cell; cells.height = T * cell;
    paint(cells.getContext("2d"), state.layer, state.head, cell);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(cells, margin, margin);
    ctx.fillStyle = getComputedStyle(document.body).color;
    ctx.font = `${labelled ? Math.min(cell - 2, 12) : 10}px ui-monospace, "DejaVu Sans Mono", monospace`;
    const step = labelled ? 1 : T > 200 ? 50 : 10;
    for (let i = 0; i < T; i += step) {
      const text = labelled ? `${i} ${data.tokens[i]}` : `${i}`;
      ctx.textAlign = "right"; ctx.textBaseline = "middle";
      ctx.fillText(text, margin - 4, margin + i * cell + cell / 2);
      ctx.save();
      ctx.translate(margin + i * cell + cell / 2, margin - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillText(text, 0, 0);
      ctx.restore();
    }
    const stops = V.map((c, i) => `rgb(${c.join(",")}) ${((100 * i) / (V.length - 1)).toFixed(1)}%`).join(", ");
    const end = `${+largest.toPrecision(3)}`;
    const ends = { fixed: ["0", end], row: ["0", "the row's largest"], log: [`≤${+(LOG_FLOOR * largest).toPrecision(2)}`, end] }[state.scale];
    const which = state.head === "all" ? `the mean of layer ${state.layer}'s ${H} heads` : `layer ${state.layer}, head ${state.head}`;
    $("legend").replaceChildren(`${which}: rows are queries, columns keys; hover a cell for its ${quantity}. ${ends[0]}`);
    const bar = document.createElement("span");
    bar.className = "bar"; bar.style.background = `linear-gradient(to right, ${stops})`;
    $("legend").append(bar, ends[1]);
  }
  $("cells").onmousemove = (event) => {
    const q = Math.floor((event.offsetY - matrix.top) / matrix.cell), k = Math.floor((event.offsetX - matrix.left) / matrix.cell);
    const tip = $("tip");
    if (event.offsetY < matrix.top || event.offsetX < matrix.left || q >= T || k >= T) { tip.hidden = true; return; }
    const masked = seen(state.layer, q, k) ? "" : " (masked)";
    tip.textContent = `query ${q} “${data.tokens[q]}” → key ${k} “${data.tokens[k]}”: ${shown(state.layer, state.head, q, k).toFixed(precision)}${masked}`;
    tip.style.left = `${event.clientX + 14}px`; tip.style.top = `${event.clientY + 14}px`;
    tip.hidden = false;
  };
  $("cells").onmouseleave = () => { $("tip").hidden = true; };

  function draw() {
    if (state.view === "heads") drawHeads();
    else if (state.view === "grid") drawGrid();
    else drawMatrix();
  }

  draw();
  // For scripts and tests: the weights as the page holds them, and what it shows.
  window.attncliPage = {
    state,
    matrix,
    weights: (l, h) => Array.from({ length: T }, (_, q) => Array.from({ length: T }, (_, k) => weight(l, h, q, k))),
    ready: true,
  };
  document.body.dataset.ready = "true";
})();
