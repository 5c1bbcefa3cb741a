// The explorer's page: reads the form, asks the server (/api/explore), draws the answer.
// Every number drawn comes from the answer, computed by the library; nothing here computes a
// convolution, a size or a gradient. (Plain JavaScript, no build step, nothing fetched from
// the network.)
'use strict';

const NS = 'http://www.w3.org/2000/svg';
const FIELDS = ['rank', 'size', 'kernel', 'stride', 'dilation', 'mode', 'pad_before', 'pad_after',
  'output_padding', 'c_in', 'c_out', 'groups', 'layers'];
let answer = null;   // the last good answer
let asked = 0;       // requests sent; an answer to an older one is dropped
let timer = null;

const $ = (id) => document.getElementById(id);

function svgEl(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function fmt(v) {
  if (v === null || v === undefined) return '—';
  if (Number.isInteger(v)) return String(v);
  const s = v.toFixed(2);
  return s.replace(/\.?0+$/, '');
}

function dims(n, rank) { return rank === 2 ? `${n}×${n}` : String(n); }

// Fill for a value: white to blue for non-negative data, red / white / blue when signed.
function colour(v, lo, hi) {
  if (v === 0) return '#ffffff';
  const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
  const t = Math.min(1, Math.abs(v) / m);
  const light = Math.round(255 - 170 * t);
  if (lo >= 0) return `rgb(${light},${Math.round(255 - 120 * t)},255)`;
  return v > 0 ? `rgb(${light},${Math.round(255 - 120 * t)},255)` : `rgb(255,${light},${light})`;
}

function grey(v, hi) {
  const g = Math.round(250 - 200 * (hi > 0 ? v / hi : 0));
  return `rgb(${g},${g},${g})`;
}

function range(values) {
  let lo = 0, hi = 0;
  for (const v of values) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return [lo, hi];
}

// A grid of `rows × cols` cells at (x0, y0); `cell(r, c)` gives {fill, text, stroke, width,
// title, attrs}. Text is drawn only where it fits.
function cells(svg, x0, y0, rows, cols, size, cell) {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const d = cell(r, c);
      if (!d) continue;
      const rect = svgEl('rect', {
        x: x0 + c * size, y: y0 + r * size, width: size, height: size,
        fill: d.fill || '#fff', stroke: d.stroke || '#bbb', 'stroke-width': d.width || 0.5,
      }, svg);
      if (d.title !== undefined) svgEl('title', {}, rect).textContent = d.title;
      const text = d.text === undefined ? '' : String(d.text);
      if (text && size >= 12 && text.length * size * 0.3 <= size * 1.25 + 6) {
        const fs = Math.min(12, size * 0.5, (size * 1.7) / Math.max(1, text.length));
        const t = svgEl('text', {
          x: x0 + c * size + size / 2, y: y0 + r * size + size / 2 + fs * 0.35,
          'font-size': fs.toFixed(1), 'text-anchor': 'middle', fill: d.ink || '#111',
          ...(d.attrs || {}),
        }, svg);
        t.textContent = text;
      }
    }
  }
}

function cellSize(cols, rows, width, height, largest) {
  return Math.max(4, Math.min(largest || 28, Math.floor(width / Math.max(1, cols)), Math.floor(height / Math.max(1, rows))));
}

function label(svg, x, y, text, anchor, size) {
  const t = svgEl('text', { x, y, 'font-size': size || 12, 'text-anchor': anchor || 'start', fill: '#333' }, svg);
  t.textContent = text;
  return t;
}

function note(container, text) {
  const p = document.createElement('p');
  p.className = 'note';
  p.textContent = text;
  container.appendChild(p);
}

// A matrix {shape: [rows, cols], data} as a grid with values, channel blocks outlined.
function drawMatrix(container, m, title, blockRows, blockCols, rowName, colName, id) {
  const [rows, cols] = m.shape;
  const size = cellSize(cols, rows, 640, 640);
  // Column names that do not fit across a cell stand upright above it.
  const longest = Math.max(...Array.from({ length: cols }, (_, c) => colName(c).length));
  const upright = size >= 14 && longest * 5.6 > size;
  const left = 46, top = upright ? 26 + longest * 5.6 : 34;
  const svg = svgEl('svg', { width: Math.max(left + cols * size + 8, title.length * 8), height: top + rows * size + 8, id });
  label(svg, 0, 14, title, 'start', 13);
  const [lo, hi] = range(m.data);
  cells(svg, left, top, rows, cols, size, (r, c) => {
    const v = m.data[r * cols + c];
    return { fill: colour(v, lo, hi), text: v === 0 ? '' : fmt(v), title: `${rowName(r)}, ${colName(c)}: ${fmt(v)}`,
      attrs: { 'data-r': r, 'data-c': c } };
  });
  if (size >= 14) {
    for (let c = 0; c < cols; c++) {
      const x = left + c * size + size / 2;
      if (upright) label(svg, x + 3, top - 4, colName(c), 'start', 9).setAttribute('transform', `rotate(-90 ${x + 3} ${top - 4})`);
      else label(svg, x, top - 4, colName(c), 'middle', 9);
    }
    for (let r = 0; r < rows; r++) label(svg, left - 3, top + r * size + size / 2 + 3, rowName(r), 'end', 9);
  }
  for (let b = blockRows; b < rows; b += blockRows) {
    svgEl('line', { x1: left, x2: left + cols * size, y1: top + b * size, y2: top + b * size, stroke: '#1f3b57', 'stroke-width': 2 }, svg);
  }
  for (let b = blockCols; b < cols; b += blockCols) {
    svgEl('line', { y1: top, y2: top + rows * size, x1: left + b * size, x2: left + b * size, stroke: '#1f3b57', 'stroke-width': 2 }, svg);
  }
  container.appendChild(svg);
}

// The name of flat index `j` of an array with channel count `ch` and spatial side `n`.
function cellName(prefix, j, ch, n, rank) {
  const per = rank === 2 ? n * n : n;
  const c = Math.floor(j / per), p = j % per;
  const where = rank === 2 ? `${Math.floor(p / n)},${p % n}` : String(p);
  return ch > 1 ? `${prefix}${c}[${where}]` : `${prefix}[${where}]`;
}

// One channel of an array [.., c, spatial..] as a 1-D row or 2-D grid; `style(flat index of
// the channel's cell, value)` may add a stroke or replace the text.
function channelGrid(svg, x0, y0, arr, channel, size, style) {
  const shape = arr.shape, rank = shape.length - 2;
  const n = shape[shape.length - 1], rows = rank === 2 ? shape[shape.length - 2] : 1;
  const per = rows * n, base = channel * per;
  const [lo, hi] = range(arr.data);
  cells(svg, x0, y0, rows, n, size, (r, c) => {
    const idx = r * n + c, v = arr.data[base + idx];
    return Object.assign({ fill: colour(v, lo, hi), text: fmt(v), title: fmt(v) }, style ? style(idx, v) : {});
  });
  return [n * size, rows * size];
}

// Every channel of `arr` ([1, c, spatial..]), side by side, with a title.
function drawArray(container, arr, title, style, id) {
  const rank = arr.shape.length - 2, ch = arr.shape[1];
  const n = arr.shape[arr.shape.length - 1], rows = rank === 2 ? arr.shape[2] : 1;
  const size = cellSize(n * ch, rows, 520, 360);
  const svg = svgEl('svg', { id });
  label(svg, 0, 14, title, 'start', 13);
  let x = 0, width = 0, height = 0;
  for (let c = 0; c < ch; c++) {
    if (ch > 1) label(svg, x, 32, `channel ${c}`, 'start', 10);
    const [w, h] = channelGrid(svg, x, 38, arr, c, size, style ? (i, v) => style(c, i, v) : null);
    x += w + 12; width = x; height = Math.max(height, h);
  }
  svg.setAttribute('width', Math.max(width, title.length * 8.2));
  svg.setAttribute('height', 44 + height);
  container.appendChild(svg);
}

function row(table, name, html, id) {
  const tr = document.createElement('tr');
  const a = document.createElement('td'); a.textContent = name;
  const b = document.createElement('td'); b.innerHTML = html;
  if (id) b.querySelector('.num').id = id;
  tr.append(a, b);
  table.appendChild(tr);
}

const num = (v) => `<span class="num">${v}</span>`;
const list = (v) => (v && v.length ? v.join(', ') : 'none');

function drawSizes(a) {
  const s = a.settings, z = a.sizes, r = s.rank, table = $('sizes');
  table.innerHTML = '';
  const o = z.conv_output[0], t = z.transpose_output[0];
  row(table, 'conv output size', `${num(dims(o, r))} from input ${dims(s.size, r)}: ⌊(i + p_b + p_a − k_e)/s⌋ + 1 = ⌊(${s.size} + ${z.padding[0]} + ${z.padding[1]} − ${z.effective_kernel})/${s.stride}⌋ + 1`, 'conv-out');
  row(table, 'effective kernel k_e', `${num(z.effective_kernel)} = d·(k − 1) + 1`, 'k-eff');
  row(table, 'padding (before, after)', `${num(z.padding.join(', '))}${s.mode === 'explicit' ? '' : ' (computed by TensorFlow’s ' + (s.mode === 'tf_same' ? 'SAME' : 'VALID') + ')'}`, 'padding');
  row(table, 'a = cells of the padded input past the last window', `${num(fmt(z.past_last_window))}`, 'a');
  const op = z.output_padding;
  row(table, 'transposed conv output size', `${num(dims(t, r))} from input ${dims(o, r)}` +
    (s.mode === 'explicit' ? `: (o − 1)·s + k_e − p_b − p_a + op with op = ${op}` : ': TensorFlow’s output shape, the conv’s input size'), 'transpose-out');
  row(table, 'legal output paddings', s.mode === 'explicit' ? num(list(z.legal_output_paddings)) : num('— (TensorFlow takes an output shape)'), 'legal-op');
  const same = z.same_output_inputs;
  row(table, 'input sizes with the same conv output', num(same ? `${same[0]} … ${same[1]}` : '—') + ' (the many-to-one sizes output padding picks from)', 'same-inputs');
  row(table, 'input cells no tap reads (zero columns of A)', num(z.unread_inputs ? list(z.unread_inputs) : '—'), 'unread');
  const tf = z.tf;
  row(table, 'TensorFlow, same k, s, d', num(`SAME → ${fmt(tf.same_output)} (padding ${tf.same_padding ? tf.same_padding.join(', ') : '—'}), VALID → ${fmt(tf.valid_output)}`) +
    `; its transposed conv of ${o}: SAME gives ${fmt(tf.same_transpose_default)} by default (accepts ${tf.same_transpose_sizes ? tf.same_transpose_sizes.join('…') : '—'}), VALID ${fmt(tf.valid_transpose_default)} (accepts ${tf.valid_transpose_sizes ? tf.valid_transpose_sizes.join('…') : '—'})`, 'tf');
}

function drawMatrices(a) {
  const s = a.settings, z = a.sizes, m = a.matrix, r = s.rank;
  const A = $('matrix-a'), AT = $('matrix-at');
  A.innerHTML = ''; AT.innerHTML = '';
  const o = z.conv_output[0], t = z.transpose_output[0];
  const spatial = (n) => (r === 2 ? n * n : n);
  const yName = (j) => cellName('y', j, s.c_out, o, r);
  const xName = (j) => cellName('x', j, s.c_in, s.size, r);
  const tName = (j) => cellName('y′', j, s.c_in, t, r);
  let caption = `A has one row per output cell of the conv (${s.c_out * spatial(o)}) and one column per input cell (${s.c_in * spatial(s.size)}); entry = the kernel weight (numbered 1, 2, … in PyTorch’s layout [c_out, c_in/g, k…]) that links them.`;
  if (s.c_in > 1 || s.c_out > 1) caption += ' Thick lines separate channels: block (output channel, input channel).';
  if (s.groups > 1) caption += ` With groups = ${s.groups} an output channel reads only its group’s input channels: the blocks across groups are zero.`;
  if (m.a.note) { note(A, m.a.note); $('matrix-caption').textContent = caption; return; }
  drawMatrix(A, m.a, `A: conv, ${m.a.shape[0]}×${m.a.shape[1]}`, spatial(o), spatial(s.size), yName, xName, 'svg-a');
  if (m.at.note) { note(AT, m.at.note); }
  else {
    drawMatrix(AT, m.at, `transposed conv’s matrix, ${m.at.shape[0]}×${m.at.shape[1]}`, spatial(t), spatial(o), tName, yName, 'svg-at');
  }
  if (m.at_minus_a_transposed !== null) caption += ` The transposed conv’s matrix is Aᵀ: largest difference ${fmt(m.at_minus_a_transposed)}.`;
  else caption += ` With output padding ${z.output_padding} (not a = ${z.past_last_window}) the transposed conv returns ${dims(t, r)} cells, not ${dims(s.size, r)}: its matrix is the transpose of the conv’s for that input size.`;
  $('matrix-caption').textContent = caption;
}

function swatch(colourName, text) {
  return `<span><i style="background:${colourName}"></i>${text}</span>`;
}

const view = () => document.querySelector('input[name=view]:checked').value;

function frameCount(a) {
  const v = view();
  if (v === 'sliding') return a.sliding.frames ? a.sliding.frames.length : 0;
  if (v === 'scatter') return a.matrix.scatter ? a.matrix.scatter.frames.length : 0;
  return a.zero_insertion.frames ? a.zero_insertion.frames.length : 0;
}

function drawView(a) {
  const box = $('view');
  box.innerHTML = '';
  $('view-legend').innerHTML = '';
  const n = frameCount(a), step = $('step');
  step.max = Math.max(0, n - 1);
  if (step.dataset.wanted !== undefined) { step.value = step.dataset.wanted; delete step.dataset.wanted; }
  if (Number(step.value) > n - 1) step.value = Math.max(0, n - 1);
  const f = Number(step.value);
  $('step-label').textContent = n ? `step ${f + 1} of ${n}` : '';
  const v = view();
  if (v === 'sliding') drawSliding(a, f, box);
  else if (v === 'scatter') drawScatter(a, f, box);
  else drawZero(a, f, box);
}

function posKey(pos) { return pos.join(','); }

// The output grid right of an input `width × height` px drawn at `size`: the cells up to the
// frame's output cell filled in (channel 0), that one outlined. Returns its flat index.
function drawOutput(svg, o, y, frame, r, width, height, size, title) {
  // Past the input's title too, which can be wider than its grid.
  const orows = r === 2 ? o : 1, x1 = Math.max(width, 330) + 30, osize = Math.min(size * 1.2, 34);
  const cur = r === 2 ? frame.out[0] * o + frame.out[1] : frame.out[0];
  label(svg, x1, 14, `${title} (channel 0), ${dims(o, r)}`, 'start', 12);
  cells(svg, x1, 22, orows, o, osize, (rr, c) => {
    const idx = rr * o + c;
    if (idx > cur) return { fill: '#fff', text: '' };
    return { fill: idx === cur ? '#ffe2b8' : '#f4f4f4', text: fmt(y.data[idx]), stroke: idx === cur ? '#e07b00' : '#bbb', width: idx === cur ? 3 : 0.5 };
  });
  svg.setAttribute('width', x1 + Math.max(o * osize, 300) + 10);
  svg.setAttribute('height', 30 + Math.max(height, orows * osize));
  return cur;
}

function drawSliding(a, f, box) {
  const sl = a.sliding, s = a.settings, r = s.rank;
  if (!sl.frames) { note(box, sl.note); $('view-caption').textContent = ''; return; }
  const frame = sl.frames[f], P = sl.padded, off = sl.offset, i = s.size;
  const x = a.duality.x, y = a.duality.y, w = a.w.data;
  const taps = new Map();
  frame.taps.forEach((t, k) => { if (t.pos.every((p) => p !== null)) taps.set(posKey(t.pos), k); });
  const unread = new Set(a.sizes.unread_inputs || []);
  const rows = r === 2 ? P : 1;
  const size = cellSize(P, rows, 620, 420, 40);
  const svg = svgEl('svg', {});
  label(svg, 0, 14, `padded input (channel 0), ${dims(P, r)}`, 'start', 12);
  cells(svg, 0, 22, rows, P, size, (rr, c) => {
    const pos = r === 2 ? [rr, c] : [c];
    const inside = pos.every((p) => p >= off && p < off + i);
    const k = taps.get(posKey(pos));
    let text = '0', fill = '#e4e4e4';
    if (inside) {
      const idx = r === 2 ? (rr - off) * i + (c - off) : c - off;
      text = fmt(x.data[idx]);
      // Per axis: a 2-D cell is unread when its row or its column is.
      fill = pos.some((p) => unread.has(p - off)) ? '#fbdada' : '#dbe9f7';
    }
    const d = { fill, text, title: inside ? 'input' : 'padding' };
    if (k !== undefined) Object.assign(d, { stroke: '#e07b00', width: 3, text: `${text}·${fmt(w[k])}`, title: `tap ${k}: weight ${fmt(w[k])}` });
    return d;
  });
  const cur = drawOutput(svg, a.sizes.conv_output[0], y, frame, r, P * size, rows * size, size, 'conv output');
  box.appendChild(svg);
  const read = frame.taps.filter((t) => t.input).length;
  $('view-caption').textContent = `Output cell (${frame.out.join(', ')}) is the sum of the ${frame.taps.length} taps (orange, value·weight): ${read} land on the input, ${frame.taps.length - read} on padding. That is row ${cur} of A.` +
    (unread.size ? ` Red input cells are read by no tap: zero columns of A.` : '');
  $('view-legend').innerHTML = swatch('#dbe9f7', 'input') + swatch('#e4e4e4', 'padding') + swatch('#fbdada', 'input no tap reads') + swatch('#ffe2b8', 'current output cell');
}

function drawScatter(a, f, box) {
  const sc = a.matrix.scatter, s = a.settings;
  if (!sc) { note(box, a.matrix.a.note || a.matrix.at.note || 'too large to draw'); $('view-caption').textContent = ''; return; }
  const frame = sc.frames[f], g = sc.g, out = sc.forward;
  const per = g.data.length / g.shape[1];
  const ch = Math.floor(f / per), cell = f % per;
  drawArray(box, g, 'input x′ of the transposed conv (= upstream gradient g)', (c, idx) =>
    (c === ch && idx === cell ? { stroke: '#e07b00', width: 3, fill: '#ffe2b8' } : {}));
  const shaped = (data) => ({ shape: out.shape, data });
  drawArray(box, shaped(frame.stamp), `stamp of cell ${f}: ${fmt(g.data[f])} × column ${f} of Aᵀ`);
  drawArray(box, shaped(frame.sum), `running sum after ${f + 1} stamp${f ? 's' : ''}`, null, 'scatter-sum');
  const last = f === sc.frames.length - 1;
  $('view-caption').textContent = `Each input cell of the transposed conv stamps a copy of the kernel scaled by its value onto the output; where stamps overlap they add (stride ${s.stride} < span ${a.sizes.effective_kernel} → overlaps).` +
    (last ? ` After the last stamp the sum is the transposed conv’s forward: largest difference ${fmt(sc.max_difference)}.` : ' Move the slider to the end to see the whole output.');
}

function drawZero(a, f, box) {
  const z = a.zero_insertion, s = a.settings, r = s.rank;
  if (!z.frames) { note(box, z.note); $('view-caption').textContent = ''; return; }
  const frame = z.frames[f], P = z.padded.shape[2], rows = r === 2 ? P : 1;
  const kindOf = (pos) => {
    const ks = pos.map((p) => z.kinds[p]);
    if (ks.every((k) => k === 'x')) return 'x';
    if (ks.includes('output_padding')) return 'output_padding';
    if (ks.includes('padding')) return 'padding';
    return 'zero';
  };
  const fills = { x: '#dbe9f7', zero: '#ffffff', padding: '#e4e4e4', output_padding: '#fde0c0' };
  const taps = new Map();
  frame.taps.forEach((pos, k) => { if (pos.every((p) => p !== null)) taps.set(posKey(pos), k); });
  const size = cellSize(P, rows, 620, 420, 40);
  const svg = svgEl('svg', {});
  label(svg, 0, 14, `stretched and padded x′ (channel 0), ${dims(P, r)}`, 'start', 12);
  const wf = z.flipped_w.data;
  cells(svg, 0, 22, rows, P, size, (rr, c) => {
    const pos = r === 2 ? [rr, c] : [c];
    const v = z.padded.data[r === 2 ? rr * P + c : c];
    const k = taps.get(posKey(pos));
    const d = { fill: fills[kindOf(pos)], text: fmt(v), title: kindOf(pos) };
    if (k !== undefined) Object.assign(d, { stroke: '#e07b00', width: 3, text: `${fmt(v)}·${fmt(wf[k])}` });
    return d;
  });
  drawOutput(svg, z.y.shape[2], z.y, frame, r, P * size, rows * size, size, 'transposed conv output');
  box.appendChild(svg);
  $('view-caption').textContent = `The transposed conv as an ordinary stride-1 conv: ${s.stride - 1} zero${s.stride === 2 ? '' : 's'} inserted between input cells, d·(k − 1) − p_b = ${a.sizes.effective_kernel - 1 - a.sizes.padding[0]} cells before (cropped if negative), and the kernel flipped (orange: value·flipped weight) — computed by views::conv_transpose_by_zero_insertion.`;
  $('view-legend').innerHTML = swatch(fills.x, 'input x′') + swatch(fills.zero, 'inserted zero') + swatch(fills.padding, 'padding d(k−1)−p') + swatch(fills.output_padding, 'output padding') + swatch('#ffe2b8', 'current output cell');
}

function drawDuality(a) {
  const d = a.duality, box = $('duality');
  box.innerHTML = '';
  drawArray(box, d.g, 'upstream gradient g = ∂L/∂y');
  drawArray(box, d.grad_x, '∂L/∂x from Tape::backward of the conv', null, 'grad-x');
  drawArray(box, d.conv_transpose_g, 'conv_transpose(g, w): a forward pass', null, 'ct-g');
  $('duality-caption').innerHTML = `The tape records y = conv(x, w); its backward, seeded with g, gives ∂L/∂x. The transposed conv’s forward of the same g (output padding a = ${fmt(d.output_padding)}) gives the same array: largest difference <span class="num" id="dual-diff">${fmt(d.max_difference)}</span>.`;
}

function drawCoverage(a) {
  const c = a.coverage, box = $('coverage'), s = a.settings;
  box.innerHTML = '';
  if (c.note) { note(box, c.note); $('coverage-caption').textContent = ''; return; }
  const hi = Math.max(...c.transposed.counts.data, ...c.resize_conv.counts.data);
  for (const [key, title] of [['transposed', 'transposed conv'], ['resize_conv', 'resize-conv (nearest ×s, then conv)']]) {
    const m = c[key].counts, n = m.shape[0];
    const size = cellSize(n, n, 340, 340);
    const heading = `${title}: max/min inside ${fmt(c[key].interior_ratio)}`;
    const svg = svgEl('svg', { width: Math.max(n * size, heading.length * 7.6) + 4, height: n * size + 40 });
    label(svg, 0, 14, heading, 'start', 12);
    cells(svg, 0, 24, n, n, size, (r, col) => {
      const v = m.data[r * n + col];
      return { fill: grey(v, hi), text: fmt(v), ink: v > hi * 0.55 ? '#fff' : '#111', stroke: 'none', title: fmt(v) };
    });
    box.appendChild(svg);
  }
  $('coverage-caption').textContent = `How many (input pixel, kernel tap) paths reach each output pixel after ${s.layers} stacked 2-D upsampling layer${s.layers > 1 ? 's' : ''} from ${c.input}×${c.input}, kernel ${s.kernel}, stride ${s.stride}, all weights 1 (views::coverage); one grey scale for both. Uneven inside (ratio > 1) is the checkerboard: it appears unless the kernel is a multiple of the stride.`;
}

function render(a) {
  answer = a;
  drawSizes(a);
  drawMatrices(a);
  drawView(a);
  drawDuality(a);
  drawCoverage(a);
}

function showError(e) {
  const box = $('error');
  box.textContent = e.param ? `${e.error}\n(parameter ${e.param} = ${e.value})` : e.error;
  box.className = 'shown';
  document.querySelectorAll('section').forEach((s) => { s.style.opacity = 0.35; });
}

function clearError() {
  $('error').className = '';
  $('error').textContent = '';
  document.querySelectorAll('section').forEach((s) => { s.style.opacity = 1; });
}

function query() {
  const q = new URLSearchParams();
  for (const f of FIELDS) q.set(f, $(f).value.trim());
  return q.toString();
}

async function refresh() {
  const mine = ++asked, qs = query(), status = $('status');
  status.textContent = 'computing…';
  document.body.dataset.state = 'busy';
  try {
    const r = await fetch('/api/explore?' + qs);
    const body = await r.json();
    if (mine !== asked) return;
    if (r.ok) { clearError(); render(body); } else showError(body);
    status.textContent = r.ok ? 'computed by adjoint' : 'settings refused';
    document.body.dataset.state = r.ok ? 'ready' : 'error';
  } catch (e) {
    if (mine !== asked) return;
    showError({ error: `the explorer’s server did not answer (${e.message}): is it still running?` });
    status.textContent = 'no server';
    document.body.dataset.state = 'error';
  }
  document.body.dataset.query = qs;
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 120);
}

// Settings in the page's own address (`/?rank=2&stride=1&view=scatter&step=4`) fill the form,
// so a learner can keep or share a link to what they see.
function fromAddress() {
  const q = new URLSearchParams(location.search);
  for (const f of FIELDS) if (q.has(f)) $(f).value = q.get(f);
  const v = document.querySelector(`input[name=view][value="${q.get('view')}"]`);
  if (v) v.checked = true;
  if (q.has('step')) $('step').dataset.wanted = q.get('step');
}

fromAddress();
for (const f of FIELDS) { $(f).addEventListener('input', schedule); $(f).addEventListener('change', schedule); }
$('step').addEventListener('input', () => { if (answer) drawView(answer); });
document.querySelectorAll('input[name=view]').forEach((r) => r.addEventListener('change', () => {
  $('step').value = 0;
  if (answer) drawView(answer);
}));
refresh();
