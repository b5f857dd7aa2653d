/* The attention explorer (viz/explorer.js), inlined into every page that
 * attn_explorer_write (src/io/explorer.c) writes. Plain ES2017, no library.
 *
 * The data is the JSON object in <script id="attn-data">:
 *   {version, decimals, title, subtitle, maps: [{name, kind ("self", "cross",
 *    "alignment"), layers, heads, rows, cols, rowAxis, colAxis, note,
 *    rowLabels, colLabels, colGrid? (columns laid out as a grid of this
 *    width: image regions), maskName?, mask? (base64, one byte per cell, 0 =
 *    masked, else allowed), w (base64 of the quantised weights: uint16
 *    little-endian round(w * 1000) when decimals is 3, uint8 round(w * 100)
 *    when 2)}]}
 * weights [L, H, R, C] row-major as in include/attn/explorer.h.
 *
 * Views: the head view (two token columns and lines), the model view (every
 * layer x head as a small heatmap, click to enlarge), the step view of an
 * alignment map (one decoding step at a time). window.attnExplorer is a
 * small hook for tests and for the console (docs/explorer.md). */
(function () {
  'use strict';

  var DATA = JSON.parse(document.getElementById('attn-data').textContent);
  var DEC = DATA.decimals;
  var SCALE = DEC === 3 ? 1000 : 100;
  var HEAD_COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b',
                      '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#393b79', '#637939'];
  var MIN_LINE = 0.01;     /* lines of smaller weights are left out of the unfiltered view */
  var TOP_LINES = 4;       /* and only the largest few of each query and head (all once focused) */
  var TOK_H = 22;          /* one token row of the head view, px (--tok-h in the CSS) */
  var LINE_W = 260;        /* width of the lines' canvas, px */

  /* ---- data -------------------------------------------------------------------------- */

  function bytes(b64) {
    var bin = atob(b64), a = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i);
    return a;
  }

  /* Each map gets q: the quantised weights as integers (value = q / SCALE). */
  DATA.maps.forEach(function (m) {
    var b = bytes(m.w), n = m.layers * m.heads * m.rows * m.cols;
    if (DEC === 3) {
      if (b.length !== 2 * n) throw new Error('map ' + m.name + ': ' + b.length + ' bytes for ' + n + ' weights');
      m.q = new Uint16Array(n);
      for (var i = 0; i < n; i++) m.q[i] = b[2 * i] | (b[2 * i + 1] << 8);
    } else {
      if (b.length !== n) throw new Error('map ' + m.name + ': ' + b.length + ' bytes for ' + n + ' weights');
      m.q = b;
    }
    m.allowed = m.mask ? bytes(m.mask) : null;
    var mx = 0;
    for (var j = 0; j < n; j++) if (m.q[j] > mx) mx = m.q[j];
    m.qmax = mx || 1;
    /* weights over many keys are small: then colours run to the largest one */
    m.contrast = mx / SCALE < 0.5;
    delete m.w;
  });

  function qAt(m, l, h, r, c) { return m.q[((l * m.heads + h) * m.rows + r) * m.cols + c]; }
  function fmt(q) { return (q / SCALE).toFixed(DEC); }
  function isMasked(m, r, c) { return m.allowed ? m.allowed[r * m.cols + c] === 0 : false; }
  function headColour(h) {
    return h < HEAD_COLOURS.length ? HEAD_COLOURS[h] : 'hsl(' + ((h * 137) % 360) + ',65%,45%)';
  }
  /* The top of the colour scale: 1, or with the contrast box the map's largest weight. */
  function vmax() { var m = M(); return m.contrast ? m.qmax / SCALE : 1; }
  /* White -> dark blue, as the SVG maps' "Blues" scale; t is a weight. */
  function ramp(w) {
    var t = Math.min(1, w / vmax());
    return [Math.round(255 - t * (255 - 8)), Math.round(255 - t * (255 - 48)), Math.round(255 - t * (255 - 107))];
  }
  var MASKED_RGB = [227, 225, 220];

  /* ---- state ------------------------------------------------------------------------- */

  var S = { map: 0, view: 'head', layer: 0, heads: [], focus: null, pinned: null,
            zoom: null, cell: 0, step: 0, playing: null };
  function M() { return DATA.maps[S.map]; }

  var $ = function (id) { return document.getElementById(id); };
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  /* A token as shown: spaces at the ends visible, newlines and tabs as symbols. */
  function shown(t) {
    var s = String(t).replace(/\n/g, '\u21b5').replace(/\t/g, '\u21e5');
    return s.replace(/^ +| +$/g, function (x) { return x.replace(/ /g, '\u2423'); }) || '\u2205';
  }

  /* ---- tooltip ----------------------------------------------------------------------- */

  var tip = $('tip');
  function showTip(text, x, y) {
    tip.textContent = text;
    tip.hidden = false;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.min(x + 14, window.innerWidth - w - 4) + 'px';
    tip.style.top = Math.min(y + 14, window.innerHeight - h - 4) + 'px';
  }
  function hideTip() { tip.hidden = true; }
  function describe(m, l, h, r, c) {
    var q = qAt(m, l, h, r, c);
    return fmt(q) + '\n' + m.rowAxis + ' ' + r + ' "' + shown(m.rowLabels[r]) + '"\n' +
      m.colAxis + ' ' + c + ' "' + shown(m.colLabels[c]) + '"\nlayer ' + l + ', head ' + h +
      (isMasked(m, r, c) ? '\nmasked (' + (m.maskName || 'mask') + ')' : '');
  }

  /* ---- controls ---------------------------------------------------------------------- */

  function tabButton(parent, label, selected, onClick) {
    var b = el('button', null, label);
    b.type = 'button';
    b.setAttribute('role', 'tab');
    b.setAttribute('aria-selected', selected ? 'true' : 'false');
    b.addEventListener('click', onClick);
    parent.appendChild(b);
    return b;
  }

  function viewsOf(m) { return m.kind === 'alignment' ? ['step', 'head', 'model'] : ['head', 'model']; }
  var VIEW_NAMES = { head: 'head view', model: 'model view', step: 'step view' };

  function renderControls() {
    var m = M();
    var maps = $('maps');
    maps.textContent = '';
    maps.hidden = DATA.maps.length < 2;
    DATA.maps.forEach(function (mm, k) {
      tabButton(maps, mm.name, k === S.map, function () { setMap(k); });
    });
    var views = $('views');
    views.textContent = '';
    viewsOf(m).forEach(function (v) {
      tabButton(views, VIEW_NAMES[v], v === S.view, function () { setView(v); });
    });
    var sel = $('layer');
    sel.textContent = '';
    for (var l = 0; l < m.layers; l++) {
      var o = el('option', null, String(l));
      o.value = String(l);
      sel.appendChild(o);
    }
    sel.value = String(S.layer);
    $('layer-box').hidden = m.layers < 2 || S.view === 'model';
    var heads = $('heads');
    heads.textContent = '';
    heads.hidden = m.heads < 2 || S.view !== 'head';
    if (m.heads >= 2) {
      heads.appendChild(el('span', null, 'heads'));
      for (var h = 0; h < m.heads; h++) {
        var lab = el('label'), cb = el('input'), sw = el('span', 'sw');
        cb.type = 'checkbox';
        cb.checked = S.heads.indexOf(h) >= 0;
        cb.dataset.head = String(h);
        cb.addEventListener('change', onHeadBox);
        sw.style.background = headColour(h);
        lab.appendChild(cb);
        lab.appendChild(sw);
        lab.appendChild(document.createTextNode(String(h)));
        heads.appendChild(lab);
      }
      var all = el('button', null, 'all');
      all.type = 'button';
      all.addEventListener('click', function () { setHeads(allHeads()); });
      heads.appendChild(all);
    }
    $('contrast').checked = m.contrast;
    $('contrast-max').textContent = fmt(m.qmax);
    $('note').textContent = m.note || '';
    $('note').hidden = !m.note;
  }
  function onHeadBox() {
    var hs = [];
    document.querySelectorAll('#heads input').forEach(function (cb) {
      if (cb.checked) hs.push(Number(cb.dataset.head));
    });
    S.heads = hs;
    renderView();
  }
  function allHeads() {
    var a = [];
    for (var h = 0; h < M().heads; h++) a.push(h);
    return a;
  }
  $('layer').addEventListener('change', function () { setLayer(Number(this.value)); });
  $('contrast').addEventListener('change', function () { M().contrast = this.checked; renderView(); });

  /* ---- head view --------------------------------------------------------------------- */

  function renderHeadView() {
    var m = M();
    var rowsBox = $('hv-rows'), colsBox = $('hv-cols');
    rowsBox.textContent = '';
    colsBox.textContent = '';
    var n = Math.max(m.rows, m.cols);
    rowsBox.appendChild(el('div', 'tok axis', m.rowAxis));
    colsBox.appendChild(el('div', 'tok axis', m.colAxis));
    m.rowLabels.forEach(function (t, i) { rowsBox.appendChild(tokenDiv(t, 'row', i)); });
    m.colLabels.forEach(function (t, j) { colsBox.appendChild(tokenDiv(t, 'col', j)); });
    var cv = $('hv-canvas');
    var dpr = window.devicePixelRatio || 1;
    cv.width = LINE_W * dpr;
    cv.height = (n + 1) * TOK_H * dpr;
    cv.style.width = LINE_W + 'px';
    cv.style.height = (n + 1) * TOK_H + 'px';
    drawLines();
    renderDetails();
  }

  function tokenDiv(text, side, i) {
    var d = el('div', 'tok', shown(text));
    d.dataset.side = side;
    d.dataset.index = String(i);
    d.title = (side === 'row' ? M().rowAxis : M().colAxis) + ' ' + i;
    d.addEventListener('mouseenter', function (e) { onTokenEnter(side, i, e); });
    d.addEventListener('mouseleave', onTokenLeave);
    d.addEventListener('click', function () { onTokenClick(side, i); });
    return d;
  }

  /* The focused token: the hovered one, else the pinned one. */
  function focus() { return S.focus || S.pinned; }

  function onTokenEnter(side, i, e) {
    S.focus = { side: side, index: i };
    drawLines();
    renderDetails();
    var p = S.pinned, m = M();
    if (p && p.side !== side && S.heads.length) { /* exact weights between the pinned token and this one */
      var r = side === 'row' ? i : p.index, c = side === 'col' ? i : p.index;
      var lines = S.heads.map(function (h) { return 'head ' + h + ': ' + fmt(qAt(m, S.layer, h, r, c)); });
      showTip(m.rowAxis + ' ' + r + ' "' + shown(m.rowLabels[r]) + '" \u2192 ' + m.colAxis + ' ' + c + ' "' +
              shown(m.colLabels[c]) + '"\nlayer ' + S.layer + '\n' + lines.join('\n') +
              (isMasked(m, r, c) ? '\nmasked (' + (m.maskName || 'mask') + ')' : ''), e.clientX, e.clientY);
    }
  }
  function onTokenLeave() {
    S.focus = null;
    hideTip();
    drawLines();
    renderDetails();
  }
  function onTokenClick(side, i) {
    var p = S.pinned;
    S.pinned = p && p.side === side && p.index === i ? null : { side: side, index: i };
    drawLines();
    renderDetails();
  }

  function drawLines() {
    var m = M(), cv = $('hv-canvas'), g = cv.getContext('2d');
    var dpr = window.devicePixelRatio || 1;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, LINE_W, cv.height / dpr);
    var f = focus(), l = S.layer, top = vmax();
    var y0 = TOK_H * 1.5 + 6; /* centre of token 0 (after the axis title row and the padding) */
    /* Lines are grouped by head and by opacity (20 steps): one path each. */
    S.heads.forEach(function (h) {
      var bins = [];
      for (var k = 0; k <= 20; k++) bins.push([]);
      var r0 = 0, r1 = m.rows, c0 = 0, c1 = m.cols;
      if (f && f.side === 'row') { r0 = f.index; r1 = f.index + 1; }
      if (f && f.side === 'col') { c0 = f.index; c1 = f.index + 1; }
      var best = [];
      for (var r = r0; r < r1; r++) {
        best.length = 0;
        for (var c = c0; c < c1; c++) {
          var w = qAt(m, l, h, r, c) / SCALE;
          if (w < (f ? 0.001 : MIN_LINE)) continue;
          if (f) { bins[Math.round(Math.min(1, w / top) * 20)].push(r, c); continue; }
          /* unfocused: keep the TOP_LINES largest of the row (a small insertion list) */
          var k = best.length;
          while (k > 0 && best[k - 1][0] < w) k--;
          if (k < TOP_LINES) { best.splice(k, 0, [w, c]); if (best.length > TOP_LINES) best.pop(); }
        }
        for (var b = 0; b < best.length; b++) bins[Math.round(Math.min(1, best[b][0] / top) * 20)].push(r, best[b][1]);
      }
      g.strokeStyle = headColour(h);
      g.lineWidth = f ? 2.5 : 1.5;
      bins.forEach(function (pairs, k) {
        if (!pairs.length) return;
        g.globalAlpha = Math.max(k, 0.5) / 20 * (f ? 1 : 0.8);
        /* one stroke a line: a single path of many crossing lines is filled as one
         * shape by the rasterizer, which takes seconds at a few thousand lines */
        for (var p = 0; p < pairs.length; p += 2) {
          g.beginPath();
          g.moveTo(2, y0 + pairs[p] * TOK_H - 6);
          g.lineTo(LINE_W - 2, y0 + pairs[p + 1] * TOK_H - 6);
          g.stroke();
        }
      });
    });
    g.globalAlpha = 1;
    shadeTokens();
  }

  /* With a focused token: the tokens of the other column shaded by their
   * largest weight among the selected heads, in that head's colour; masked
   * ones hatched and struck through. */
  function shadeTokens() {
    var m = M(), f = focus(), l = S.layer;
    document.querySelectorAll('#hv-rows .tok, #hv-cols .tok').forEach(function (d) {
      d.style.background = '';
      d.style.color = '';
      d.classList.remove('active', 'pinned', 'masked');
      if (!d.dataset.side) return;
      var i = Number(d.dataset.index), side = d.dataset.side;
      if (S.pinned && S.pinned.side === side && S.pinned.index === i) d.classList.add('pinned');
      if (!f) return;
      if (f.side === side) {
        if (f.index === i) d.classList.add('active');
        return;
      }
      var r = side === 'col' ? f.index : i, c = side === 'col' ? i : f.index;
      if (isMasked(m, r, c)) {
        d.classList.add('masked');
        return;
      }
      var best = -1, bh = 0;
      S.heads.forEach(function (h) {
        var q = qAt(m, l, h, r, c);
        if (q > best) { best = q; bh = h; }
      });
      if (best > 0) {
        var a = Math.min(1, best / SCALE / vmax());
        d.style.background = hexAlpha(headColour(bh), a);
        if (a > 0.6) d.style.color = '#fff';
      }
    });
  }
  function hexAlpha(col, a) {
    if (col[0] !== '#') return col.replace('hsl', 'hsla').replace(')', ',' + a.toFixed(3) + ')');
    var n = parseInt(col.slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a.toFixed(3) + ')';
  }

  /* The exact weights of the focused token: one row per token of the other
   * column, one column per selected head. */
  function renderDetails() {
    var box = $('details'), m = M(), f = focus(), l = S.layer;
    box.textContent = '';
    if (!f) {
      box.appendChild(el('p', 'help', 'No token selected.'));
      return;
    }
    var t = el('table');
    t.dataset.side = f.side;
    t.dataset.index = String(f.index);
    t.dataset.layer = String(l);
    var lab = f.side === 'row' ? m.rowLabels[f.index] : m.colLabels[f.index];
    t.appendChild(el('caption', null, (f.side === 'row' ? m.rowAxis : m.colAxis) + ' ' + f.index + ' "' +
                     shown(lab) + '", layer ' + l + (f.side === 'row' ? ': weights over each ' + m.colAxis
                     : ': weights from each ' + m.rowAxis)));
    var hr = el('tr');
    hr.appendChild(el('th', null, f.side === 'row' ? m.colAxis : m.rowAxis));
    S.heads.forEach(function (h) {
      var th = el('th', null, 'head ' + h);
      th.style.color = headColour(h);
      hr.appendChild(th);
    });
    t.appendChild(hr);
    var n = f.side === 'row' ? m.cols : m.rows;
    for (var k = 0; k < n; k++) {
      var r = f.side === 'row' ? f.index : k, c = f.side === 'row' ? k : f.index;
      var tr = el('tr', isMasked(m, r, c) ? 'masked' : null);
      tr.dataset.index = String(k);
      tr.appendChild(el('td', 'k', k + ' ' + shown(f.side === 'row' ? m.colLabels[k] : m.rowLabels[k])));
      S.heads.forEach(function (h) {
        var td = el('td', null, fmt(qAt(m, l, h, r, c)));
        td.dataset.head = String(h);
        td.title = describe(m, l, h, r, c);
        tr.appendChild(td);
      });
      t.appendChild(tr);
    }
    box.appendChild(t);
  }

  /* ---- model view -------------------------------------------------------------------- */

  /* Paints map (l, h) of m into canvas cv at one pixel per cell. */
  function paintSmall(cv, m, l, h) {
    cv.width = m.cols;
    cv.height = m.rows;
    var g = cv.getContext('2d'), img = g.createImageData(m.cols, m.rows), d = img.data;
    for (var r = 0; r < m.rows; r++)
      for (var c = 0; c < m.cols; c++) {
        var q = qAt(m, l, h, r, c), o = 4 * (r * m.cols + c);
        var rgb = isMasked(m, r, c) && q === 0 ? MASKED_RGB : ramp(q / SCALE);
        d[o] = rgb[0]; d[o + 1] = rgb[1]; d[o + 2] = rgb[2]; d[o + 3] = 255;
      }
    g.putImageData(img, 0, 0);
  }

  function renderModelView() {
    var m = M(), grid = $('grid');
    grid.textContent = '';
    grid.style.gridTemplateColumns = 'max-content repeat(' + m.heads + ', max-content)';
    var side = 110, k = Math.max(m.rows, m.cols);
    var cw = Math.round(side * m.cols / k), ch = Math.round(side * m.rows / k);
    grid.appendChild(el('div'));
    for (var h = 0; h < m.heads; h++) grid.appendChild(el('div', 'cell', 'head ' + h));
    for (var l = 0; l < m.layers; l++) {
      grid.appendChild(el('div', 'rowhead', 'layer ' + l));
      for (h = 0; h < m.heads; h++) {
        var cell = el('div', 'cell'), cv = el('canvas');
        cv.className = 'heatmap';
        cv.dataset.layer = String(l);
        cv.dataset.head = String(h);
        cv.style.width = Math.max(cw, 8) + 'px';
        cv.style.height = Math.max(ch, 8) + 'px';
        cv.title = 'layer ' + l + ', head ' + h + ': click to enlarge';
        paintSmall(cv, m, l, h);
        cv.addEventListener('click', (function (ll, hh) { return function () { openZoom(ll, hh); }; })(l, h));
        cell.appendChild(cv);
        grid.appendChild(cell);
      }
    }
    markSelected();
  }
  function markSelected() {
    document.querySelectorAll('#grid canvas').forEach(function (cv) {
      var z = S.zoom;
      cv.classList.toggle('selected', !!z && z.layer === Number(cv.dataset.layer) && z.head === Number(cv.dataset.head));
    });
  }

  /* ---- the enlarged map -------------------------------------------------------------- */

  var MIN_CELL = 14, MAX_CELL = 48; /* px: labels of 12 px stay readable */
  var CANVAS_MAX = 30000;           /* px: browsers' largest canvas side is about 32767 */

  function defaultCell(m) {
    return Math.max(MIN_CELL, Math.min(32, Math.floor(720 / Math.max(m.rows, m.cols))));
  }

  function openZoom(l, h) {
    var m = M();
    S.zoom = { layer: l, head: h };
    if (!S.cell) S.cell = defaultCell(m);
    $('zoom').hidden = false;
    drawZoom();
    markSelected();
  }
  function closeZoom() {
    S.zoom = null;
    $('zoom').hidden = true;
    markSelected();
  }

  function cellSize(m) {
    var s = Math.max(MIN_CELL, Math.min(MAX_CELL, S.cell));
    return Math.max(2, Math.min(s, Math.floor(CANVAS_MAX / Math.max(m.rows, m.cols))));
  }

  function drawZoom() {
    var m = M(), z = S.zoom;
    if (!z) return;
    var s = cellSize(m);
    $('zoom-title').textContent = m.name + ': layer ' + z.layer + ', head ' + z.head + ' (' + m.rows + ' ' +
      m.rowAxis + ' \u00d7 ' + m.cols + ' ' + m.colAxis + ')';
    $('ramp-max').textContent = m.contrast ? fmt(m.qmax) : '1';
    $('mask-legend').textContent = m.allowed ? 'masked (' + (m.maskName || 'mask') + ')' : 'no mask';
    var top = $('zoom-top'), left = $('zoom-left');
    top.textContent = '';
    left.textContent = '';
    var labH = 0;
    m.colLabels.forEach(function (t, c) {
      var d = el('div', 'lab', shown(t));
      d.style.width = s + 'px';
      d.style.lineHeight = s + 'px';
      d.dataset.index = String(c);
      d.title = m.colAxis + ' ' + c;
      top.appendChild(d);
      labH = Math.max(labH, Math.min(120, 8 * shown(t).length + 14));
    });
    top.style.height = labH + 'px';
    m.rowLabels.forEach(function (t, r) {
      var d = el('div', 'lab', shown(t));
      d.style.height = s + 'px';
      d.style.lineHeight = s + 'px';
      d.dataset.index = String(r);
      d.title = m.rowAxis + ' ' + r;
      left.appendChild(d);
    });
    $('zoom-corner').style.height = labH + 'px';
    var cv = $('zoom-canvas');
    cv.width = m.cols * s;
    cv.height = m.rows * s;
    cv.style.width = cv.width + 'px';
    cv.style.height = cv.height + 'px';
    var g = cv.getContext('2d');
    /* the weights at one pixel a cell, scaled up without smoothing */
    var small = document.createElement('canvas');
    paintSmall(small, m, z.layer, z.head);
    g.imageSmoothingEnabled = false;
    g.drawImage(small, 0, 0, cv.width, cv.height);
    /* the mask under the weights: masked cells hatched, row by row in runs */
    if (m.allowed) {
      var pat = document.createElement('canvas');
      pat.width = pat.height = 6;
      var pg = pat.getContext('2d');
      pg.fillStyle = 'rgb(' + MASKED_RGB.join(',') + ')';
      pg.fillRect(0, 0, 6, 6);
      pg.strokeStyle = '#b9b4a9';
      pg.beginPath();
      pg.moveTo(0, 6); pg.lineTo(6, 0);
      pg.stroke();
      g.fillStyle = g.createPattern(pat, 'repeat');
      g.beginPath();
      for (var r = 0; r < m.rows; r++) {
        var c = 0;
        while (c < m.cols) {
          if (!isMasked(m, r, c) || qAt(m, z.layer, z.head, r, c) !== 0) { c++; continue; }
          var c0 = c;
          while (c < m.cols && isMasked(m, r, c) && qAt(m, z.layer, z.head, r, c) === 0) c++;
          g.rect(c0 * s, r * s, (c - c0) * s, s);
        }
      }
      g.fill();
    }
    if (s >= 10) { /* cell borders */
      g.strokeStyle = 'rgba(0,0,0,0.06)';
      g.lineWidth = 1;
      g.beginPath();
      for (var x = 0; x <= m.cols; x++) { g.moveTo(x * s + 0.5, 0); g.lineTo(x * s + 0.5, cv.height); }
      for (var y = 0; y <= m.rows; y++) { g.moveTo(0, y * s + 0.5); g.lineTo(cv.width, y * s + 0.5); }
      g.stroke();
    }
    if (S.view === 'step') { /* the current decoding step */
      g.strokeStyle = '#e6550d';
      g.lineWidth = 2;
      g.strokeRect(1, S.step * s + 1, cv.width - 2, s - 2);
    }
    S.drawnCell = s;
  }

  function zoomCellAt(e) {
    var cv = $('zoom-canvas'), b = cv.getBoundingClientRect(), s = S.drawnCell, m = M();
    var c = Math.floor((e.clientX - b.left) / s), r = Math.floor((e.clientY - b.top) / s);
    if (r < 0 || c < 0 || r >= m.rows || c >= m.cols) return null;
    return { r: r, c: c };
  }
  function hotLabels(rc) {
    document.querySelectorAll('#zoom-top .lab.hot, #zoom-left .lab.hot').forEach(function (d) { d.classList.remove('hot'); });
    if (!rc) return;
    var a = $('zoom-top').children[rc.c], b = $('zoom-left').children[rc.r];
    if (a) a.classList.add('hot');
    if (b) b.classList.add('hot');
  }
  $('zoom-canvas').addEventListener('mousemove', function (e) {
    var rc = zoomCellAt(e), z = S.zoom;
    hotLabels(rc);
    if (!rc || !z) { hideTip(); return; }
    showTip(describe(M(), z.layer, z.head, rc.r, rc.c), e.clientX, e.clientY);
  });
  $('zoom-canvas').addEventListener('mouseleave', function () { hotLabels(null); hideTip(); });
  $('zoom-in').addEventListener('click', function () { S.cell = Math.min(MAX_CELL, Math.round(cellSize(M()) * 1.25)); drawZoom(); });
  $('zoom-out').addEventListener('click', function () { S.cell = Math.max(MIN_CELL, Math.round(cellSize(M()) / 1.25)); drawZoom(); });
  $('zoom-close').addEventListener('click', closeZoom);

  /* ---- step view (alignment maps) ---------------------------------------------------- */

  function renderStepView() {
    var m = M(), t = S.step;
    var range = $('step');
    range.max = String(m.rows - 1);
    range.value = String(t);
    $('step-label').textContent = 'step ' + t + ' of ' + m.rows + ': emits "' + shown(m.rowLabels[t]) + '"';
    var out = $('step-out');
    out.textContent = '';
    out.appendChild(el('span', 'help', m.rowAxis + ':'));
    m.rowLabels.forEach(function (lab, i) {
      var d = el('span', 'tok' + (i === t ? ' now' : i > t ? ' future' : ''), shown(lab));
      d.dataset.index = String(i);
      d.addEventListener('click', function () { setStep(i); });
      out.appendChild(d);
    });
    var src = $('step-src');
    src.textContent = '';
    src.classList.toggle('grid', !!m.colGrid);
    src.style.gridTemplateColumns = m.colGrid ? 'repeat(' + m.colGrid + ', max-content)' : '';
    src.appendChild(el('span', 'help', m.colAxis + ':'));
    m.colLabels.forEach(function (lab, c) {
      var q = qAt(m, 0, 0, t, c), w = q / SCALE;
      var d = el('span', 'tok');
      d.dataset.index = String(c);
      d.appendChild(el('span', null, shown(lab)));
      d.appendChild(el('span', 'v', fmt(q)));
      var rgb = isMasked(m, t, c) ? MASKED_RGB : ramp(w);
      d.style.background = 'rgb(' + rgb.join(',') + ')';
      d.style.color = w / vmax() > 0.5 ? '#fff' : '';
      d.title = describe(m, 0, 0, t, c);
      src.appendChild(d);
    });
    if (!S.zoom) S.zoom = { layer: 0, head: 0 };
    if (!S.cell) S.cell = defaultCell(m);
    $('zoom').hidden = false;
    drawZoom();
  }
  $('step').addEventListener('input', function () { setStep(Number(this.value)); });
  document.addEventListener('keydown', function (e) { /* arrow keys step through an alignment */
    if (S.view !== 'step' || e.target.tagName === 'INPUT' || e.target.tagName === 'SELECT') return;
    if (e.key === 'ArrowRight') setStep(S.step + 1);
    else if (e.key === 'ArrowLeft') setStep(S.step - 1);
  });
  $('step-prev').addEventListener('click', function () { setStep(Math.max(0, S.step - 1)); });
  $('step-next').addEventListener('click', function () { setStep(Math.min(M().rows - 1, S.step + 1)); });
  $('step-play').addEventListener('click', function () {
    if (S.playing) { clearInterval(S.playing); S.playing = null; this.textContent = 'play'; return; }
    var btn = this;
    btn.textContent = 'pause';
    if (S.step >= M().rows - 1) setStep(0);
    S.playing = setInterval(function () {
      if (S.step >= M().rows - 1) { clearInterval(S.playing); S.playing = null; btn.textContent = 'play'; return; }
      setStep(S.step + 1);
    }, 700);
  });

  /* ---- switching --------------------------------------------------------------------- */

  function renderView() {
    var v = S.view;
    $('head-view').hidden = v !== 'head';
    $('model-view').hidden = v !== 'model';
    $('step-view').hidden = v !== 'step';
    if (v !== 'model' && v !== 'step') { $('zoom').hidden = true; S.zoom = null; }
    if (v === 'model') $('zoom').hidden = !S.zoom;
    renderControls();
    if (v === 'head') renderHeadView();
    else if (v === 'model') { renderModelView(); if (S.zoom) drawZoom(); }
    else renderStepView();
  }

  function setMap(k) {
    if (!(k >= 0 && k < DATA.maps.length)) throw new Error('no map ' + k);
    S.map = k;
    var m = M();
    S.layer = Math.min(S.layer, m.layers - 1);
    S.heads = allHeads();
    S.focus = S.pinned = S.zoom = null;
    S.cell = 0;
    S.step = 0;
    if (viewsOf(m).indexOf(S.view) < 0 || m.kind === 'alignment') S.view = viewsOf(m)[0];
    renderView();
  }
  function setView(v) {
    if (viewsOf(M()).indexOf(v) < 0) throw new Error('no view ' + v + ' for this map');
    S.view = v;
    S.zoom = null;
    renderView();
  }
  function setLayer(l) {
    if (!(l >= 0 && l < M().layers)) throw new Error('no layer ' + l);
    S.layer = l;
    renderView();
  }
  function setHeads(hs) {
    S.heads = hs.filter(function (h) { return h >= 0 && h < M().heads; });
    renderView();
  }
  function setStep(t) {
    S.step = Math.max(0, Math.min(M().rows - 1, t));
    renderStepView();
  }

  /* ---- start ------------------------------------------------------------------------- */

  $('title').textContent = DATA.title;
  $('subtitle').textContent = DATA.subtitle || '';
  var nw = DATA.maps.reduce(function (a, m) { return a + m.q.length; }, 0);
  $('precision').textContent = 'Weights are shown rounded to ' + DEC + ' decimals (exact to \u00b1' +
    (DEC === 3 ? '0.0005' : '0.005') + '); ' + nw.toLocaleString('en') + ' weights in ' + DATA.maps.length +
    (DATA.maps.length > 1 ? ' maps' : ' map') + '. Written by attn.';
  setMap(0);

  /* ---- the hook for tests and the console (docs/explorer.md) ------------------------- */

  function rectOf(e) {
    e.scrollIntoView({ block: 'center', inline: 'center' });
    var b = e.getBoundingClientRect();
    return { x: b.left + b.width / 2, y: b.top + b.height / 2, width: b.width, height: b.height };
  }
  window.attnExplorer = {
    ready: true,
    /* ms from the start of navigation until the script had drawn the page, and
     * until the browser had painted it (set after the first frame) */
    readyMs: performance.now(),
    paintedMs: -1,
    decimals: DEC,
    maps: function () {
      return DATA.maps.map(function (m) {
        return { name: m.name, kind: m.kind, layers: m.layers, heads: m.heads, rows: m.rows, cols: m.cols,
                 masked: !!m.allowed, maskName: m.allowed ? (m.maskName || 'mask') : null };
      });
    },
    state: function () {
      return { map: S.map, view: S.view, layer: S.layer, heads: S.heads.slice(), step: S.step,
               zoom: S.zoom ? { layer: S.zoom.layer, head: S.zoom.head } : null };
    },
    setMap: setMap, setView: setView, setLayer: setLayer, setHeads: setHeads, setStep: setStep,
    openZoom: openZoom,
    /* map k's mask as held: [R * C] of 1 (allowed) and 0 (masked), or null */
    mask: function (k) { var a = DATA.maps[k].allowed; return a ? Array.prototype.slice.call(a) : null; },
    /* weight (l, h, r, c) of map k as the page holds it (quantised) */
    value: function (k, l, h, r, c) { return qAt(DATA.maps[k], l, h, r, c) / SCALE; },
    /* centre, in viewport pixels, of token i of the head view's 'row' or 'col' column */
    tokenRect: function (side, i) {
      return rectOf(document.querySelector('#hv-' + (side === 'row' ? 'rows' : 'cols') + ' .tok[data-index="' + i + '"]'));
    },
    /* centre of cell (r, c) of the enlarged map */
    cellRect: function (r, c) {
      var cv = $('zoom-canvas'), s = S.drawnCell, sc = $('zoom-scroll');
      sc.scrollLeft = Math.max(0, c * s - sc.clientWidth / 2);
      sc.scrollTop = Math.max(0, r * s - sc.clientHeight / 2);
      var b = cv.getBoundingClientRect(), y = b.top + r * s + s / 2, x = b.left + c * s + s / 2;
      if (y < 120 || y > window.innerHeight - 20 || x < 0 || x > window.innerWidth - 20) {
        window.scrollBy(x - window.innerWidth / 2, y - window.innerHeight / 2);
        b = cv.getBoundingClientRect();
      }
      return { x: b.left + c * s + s / 2, y: b.top + r * s + s / 2 };
    },
    /* the exact-weights table as shown: {side, index, layer, heads, rows: [{index, masked, values}]} */
    details: function () {
      var t = document.querySelector('#details table');
      if (!t) return null;
      var heads = [];
      t.querySelectorAll('tr')[0].querySelectorAll('th').forEach(function (th, k) {
        if (k) heads.push(Number(th.textContent.replace('head ', '')));
      });
      var rows = [];
      t.querySelectorAll('tr[data-index]').forEach(function (tr) {
        var v = [];
        tr.querySelectorAll('td[data-head]').forEach(function (td) { v.push(td.textContent); });
        rows.push({ index: Number(tr.dataset.index), masked: tr.classList.contains('masked'), values: v });
      });
      return { side: t.dataset.side, index: Number(t.dataset.index), layer: Number(t.dataset.layer),
               heads: heads, rows: rows };
    },
    /* the tooltip's text, or null when hidden */
    tip: function () { return tip.hidden ? null : tip.textContent; },
    /* the source weights shown by the step view */
    stepValues: function () {
      var a = [];
      document.querySelectorAll('#step-src .tok .v').forEach(function (v) { a.push(v.textContent); });
      return a;
    },
    /* hover by script (what a mouse does), for consoles without a mouse */
    hover: function (side, i) {
      onTokenEnter(side, i, { clientX: 0, clientY: 0 });
      return this.details();
    }
  };
  requestAnimationFrame(function () {
    setTimeout(function () { window.attnExplorer.paintedMs = performance.now(); }, 0);
  });
})();
