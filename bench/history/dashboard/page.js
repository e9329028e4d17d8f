"use strict";
// kitrun's dashboard: decodes the history the page carries (see
// dashboard.go for the encoding) and draws it as SVG, with no library.
(function () {
  var D = JSON.parse(document.getElementById("data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  // Okabe–Ito, then Tol's muted: distinguishable for common color blindness.
  var COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499"];

  // Decode: delta-encoded run indices and quantized medians; intervals
  // around the medians; samples as offsets from their run's median.
  var series = D.series.map(function (s) {
    var pts = [], r = 0, m = 0, commit = "";
    var commits = {};
    (s.gc || []).forEach(function (g) { commits[g[0]] = g[1]; });
    for (var i = 0; i < s.r.length; i++) {
      r += s.r[i];
      m += s.med[i];
      if (i in commits) commit = commits[i];
      pts.push({ run: r, med: m * s.step, lo: (m - s.lo[i]) * s.step, hi: (m + s.hi[i]) * s.step, samples: null, commit: commit });
    }
    if (s.s) {
      var first = pts.length - s.s.length;
      s.s.forEach(function (offs, k) {
        var mq = Math.round(pts[first + k].med / s.step);
        pts[first + k].samples = offs.map(function (o) { return (mq + o) * s.step; });
      });
    }
    return {
      config: D.configs[s.c], metric: D.metrics[s.m], pts: pts,
      changes: (s.cp || []).map(function (c) { return { i: c[0], effect: c[1], conf: c[2] }; })
    };
  });

  // el makes an SVG element, html an HTML one.
  function el(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function html(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v, unit) {
    if (unit === "s") return Math.abs(v) < 1 ? (v * 1e3).toFixed(1) + " ms" : v.toFixed(3) + " s";
    if (unit === "B") {
      var u = ["B", "KiB", "MiB", "GiB"], i = 0;
      while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
      return (i ? v.toFixed(1) : v.toFixed(0)) + " " + u[i];
    }
    return (+v.toPrecision(4)) + (unit ? " " + unit : "");
  }
  function date(run) { return new Date(D.runs[run][1] * 1000).toISOString().slice(0, 16).replace("T", " "); }
  function runLabel(run) { var r = D.runs[run]; return "run #" + r[0] + ", " + date(run) + ", kitrun " + r[2]; }
  function rawLink(run) { return "runs/" + D.runs[run][0] + ".json"; }

  // Filters.
  var F = {
    metric: document.getElementById("f-metric"), spec: document.getElementById("f-spec"),
    arch: document.getElementById("f-arch"), machine: document.getElementById("f-machine"),
    backend: document.getElementById("f-backend"), range: document.getElementById("f-range")
  };
  function fill(select, values) {
    values.forEach(function (v) { html("option", { value: v }, select, v); });
  }
  function uniq(f) {
    var seen = {}, out = [];
    D.configs.forEach(function (c) { var v = f(c); if (!(v in seen)) { seen[v] = 1; out.push(v); } });
    return out.sort();
  }
  fill(F.metric, D.metrics.map(function (m) { return m.name; }));
  if (D.metrics.some(function (m) { return m.name === "boot.all_ready"; })) F.metric.value = "boot.all_ready";
  fill(F.spec, uniq(function (c) { return c.name; }));
  fill(F.arch, uniq(function (c) { return c.arch; }));
  fill(F.machine, uniq(function (c) { return c.machine; }));
  fill(F.backend, uniq(function (c) { return c.backend; }));
  // Filters live in the URL's fragment, so that a view can be linked.
  var keys = ["metric", "spec", "arch", "machine", "backend", "range"];
  new URLSearchParams(location.hash.slice(1)).forEach(function (v, k) { if (F[k]) F[k].value = v; });

  function configShown(c) {
    return (!F.spec.value || c.name === F.spec.value) && (!F.arch.value || c.arch === F.arch.value) &&
      (!F.machine.value || c.machine === F.machine.value) && (!F.backend.value || c.backend === F.backend.value);
  }
  function firstRun() {
    var n = +F.range.value;
    return n > 0 ? Math.max(0, D.runs.length - n) : 0;
  }

  function chart(s, parent) {
    var W = 640, H = 240, L = 64, R = 12, T = 16, B = 30;
    var from = firstRun();
    var pts = s.pts.filter(function (p) { return p.run >= from; });
    var card = html("div", { "class": "card chart", "data-config": s.config.id }, parent);
    html("h3", {}, card, s.config.id + " · " + s.metric.name);
    if (!pts.length) { html("p", { "class": "empty" }, card, "no runs in range"); return; }
    var t0 = D.runs[pts[0].run][1], t1 = D.runs[pts[pts.length - 1].run][1];
    if (t1 === t0) { t0 -= 3600; t1 += 3600; }
    var y0 = Infinity, y1 = -Infinity;
    pts.forEach(function (p) {
      [p.lo, p.hi, p.med].concat(p.samples || []).forEach(function (v) { y0 = Math.min(y0, v); y1 = Math.max(y1, v); });
    });
    if (y1 === y0) { var d = Math.abs(y0) * 0.05 || 1; y0 -= d; y1 += d; }
    var pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
    var x = function (run) { return L + (W - L - R) * (D.runs[run][1] - t0) / (t1 - t0); };
    var y = function (v) { return T + (H - T - B) * (1 - (v - y0) / (y1 - y0)); };
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": s.config.id + " " + s.metric.name }, card);
    for (var i = 0; i <= 4; i++) {
      var v = y0 + (y1 - y0) * i / 4;
      el("line", { "class": "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }, svg);
      el("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end" }, svg, fmt(v, s.metric.unit));
    }
    el("line", { "class": "axis", x1: L, x2: L, y1: T, y2: H - B }, svg);
    el("line", { "class": "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }, svg);
    el("text", { x: L, y: H - 10 }, svg, date(pts[0].run));
    el("text", { x: W - R, y: H - 10, "text-anchor": "end" }, svg, date(pts[pts.length - 1].run));
    var band = pts.map(function (p) { return x(p.run) + "," + y(p.hi); })
      .concat(pts.slice().reverse().map(function (p) { return x(p.run) + "," + y(p.lo); }));
    el("polygon", { "class": "band", points: band.join(" ") }, svg);
    el("polyline", { "class": "median", points: pts.map(function (p) { return x(p.run) + "," + y(p.med); }).join(" ") }, svg);
    var offset = s.pts.length - pts.length;
    s.changes.forEach(function (c) {
      if (c.i < offset) return;
      var p = s.pts[c.i], cx = x(p.run);
      var line = el("line", { "class": "change", x1: cx, x2: cx, y1: T, y2: H - B, "data-run": D.runs[p.run][0] }, svg);
      var text = "change at " + runLabel(p.run) + (p.commit ? ", commit " + p.commit.slice(0, 12) : "") +
        ": " + (c.effect > 0 ? "+" : "") + c.effect + "%, confidence " + c.conf;
      el("title", {}, line, text);
      // Left of the line in the right half, so that the label stays inside.
      var right = cx > (L + W - R) / 2;
      var label = el("text", { "class": "change-label", x: right ? cx - 3 : cx + 3, y: T + 10, "text-anchor": right ? "end" : "start" }, svg,
        (c.effect > 0 ? "+" : "") + c.effect + "% #" + D.runs[p.run][0] + " " + D.runs[p.run][2]);
      el("title", {}, label, text);
    });
    pts.forEach(function (p) {
      var a = el("a", { href: rawLink(p.run) }, svg);
      var tip = runLabel(p.run) + (p.commit ? ", commit " + p.commit.slice(0, 12) : "") + ": median " + fmt(p.med, s.metric.unit) +
        " [" + fmt(p.lo, s.metric.unit) + ", " + fmt(p.hi, s.metric.unit) + "]";
      if (p.samples) {
        p.samples.forEach(function (v, k) {
          var c = el("circle", { "class": "sample", cx: x(p.run), cy: y(v), r: 2.5 }, a);
          el("title", {}, c, tip + "; sample " + (k + 1) + ": " + fmt(v, s.metric.unit));
        });
      } else {
        var c = el("circle", { "class": "median-pt", cx: x(p.run), cy: y(p.med), r: 1.8 }, a);
        el("title", {}, c, tip);
      }
    });
  }

  // The newest point's median of a metric, for a configuration.
  function newest(config, name) {
    for (var i = 0; i < series.length; i++) {
      var s = series[i];
      if (s.config === config && s.metric.name === name && s.pts.length) return s.pts[s.pts.length - 1].med;
    }
    return undefined;
  }
  function metricsOf(config, prefix) {
    return series.filter(function (s) { return s.config === config && s.metric.name.indexOf(prefix) === 0 && s.pts.length; })
      .map(function (s) { return { name: s.metric.name, v: s.pts[s.pts.length - 1].med }; });
  }

  function waterfall(config, parent) {
    var stages = metricsOf(config, "boot.").filter(function (m) { return m.name !== "boot.kernel_entry" || m.v > 0; });
    if (!stages.length) return;
    stages.sort(function (a, b) { return a.v - b.v; });
    var card = html("div", { "class": "card waterfall", "data-config": config.id }, parent);
    html("h3", {}, card, config.id);
    var W = 640, rowH = 18, L = 190, R = 70, H = stages.length * rowH + 24;
    var end = stages[stages.length - 1].v || 1;
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H }, card);
    var prev = 0;
    stages.forEach(function (st, i) {
      var yy = 4 + i * rowH, x0 = L + (W - L - R) * prev / end, x1 = L + (W - L - R) * st.v / end;
      el("text", { x: L - 6, y: yy + 12, "text-anchor": "end" }, svg, st.name.replace(/^boot\./, ""));
      var bar = el("rect", { "class": "stage", x: x0, y: yy + 2, width: Math.max(1, x1 - x0), height: rowH - 5 }, svg);
      el("title", {}, bar, st.name + ": " + fmt(prev, "s") + " → " + fmt(st.v, "s") + " (+" + fmt(st.v - prev, "s") + ")");
      el("text", { x: x1 + 4, y: yy + 12 }, svg, fmt(st.v, "s"));
      prev = Math.max(prev, st.v);
    });
    el("line", { "class": "axis", x1: L, x2: L, y1: 0, y2: H - 20 }, svg);
    el("text", { x: L, y: H - 6 }, svg, "VMM start");
  }

  // stacked draws one horizontal stacked bar per configuration.
  function stacked(parent, rows, unit) {
    if (!rows.length) { html("p", { "class": "empty" }, parent, "no data"); return; }
    var names = [];
    rows.forEach(function (r) { r.parts.forEach(function (p) { if (names.indexOf(p.name) < 0) names.push(p.name); }); });
    var max = Math.max.apply(null, rows.map(function (r) { return r.parts.reduce(function (a, p) { return a + p.v; }, 0); })) || 1;
    var W = 1000, rowH = 22, L = 10, R = 80, legendH = 16 * Math.ceil(names.length / 3);
    var H = rows.length * (rowH + 14) + legendH + 8;
    var card = html("div", { "class": "card stacked" }, parent);
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H }, card);
    rows.forEach(function (r, i) {
      var yy = i * (rowH + 14), x0 = L, total = 0;
      el("text", { x: L, y: yy + 11 }, svg, r.label);
      r.parts.forEach(function (p) {
        var w = (W - L - R) * p.v / max;
        var rect = el("rect", { "class": "part", x: x0, y: yy + 13, width: Math.max(0, w), height: rowH - 8, fill: COLORS[names.indexOf(p.name) % COLORS.length] }, svg);
        el("title", {}, rect, r.label + " · " + p.name + ": " + fmt(p.v, unit));
        x0 += w; total += p.v;
      });
      el("text", { x: x0 + 4, y: yy + 25 }, svg, fmt(total, unit));
    });
    names.forEach(function (n, i) {
      var lx = L + (i % 3) * 320, ly = rows.length * (rowH + 14) + 4 + 16 * Math.floor(i / 3);
      el("rect", { x: lx, y: ly, width: 10, height: 10, fill: COLORS[i % COLORS.length] }, svg);
      el("text", { x: lx + 14, y: ly + 9 }, svg, n);
    });
  }

  function memoryRows(configs) {
    return configs.map(function (c) {
      var parts = [], used = newest(c, "mem.guest_used"), rootfs = newest(c, "mem.guest_rootfs"), accounted = 0;
      if (rootfs !== undefined) { parts.push({ name: "guest rootfs", v: rootfs }); accounted += rootfs; }
      metricsOf(c, "mem.service_rss.").forEach(function (m) {
        parts.push({ name: m.name.replace("mem.service_rss.", "rss ") , v: m.v }); accounted += m.v;
      });
      if (used !== undefined) parts.push({ name: "other guest use", v: Math.max(0, used - accounted) });
      var vmm = newest(c, "mem.vmm_overhead");
      if (vmm !== undefined) parts.push({ name: "VMM overhead", v: vmm });
      return { label: c.id, parts: parts };
    }).filter(function (r) { return r.parts.length; });
  }
  function diskRows(configs) {
    return configs.map(function (c) {
      var parts = [];
      var k = newest(c, "disk.kernel");
      if (k !== undefined) parts.push({ name: "kernel", v: k });
      metricsOf(c, "disk.component.").forEach(function (m) { parts.push({ name: m.name.replace("disk.component.", ""), v: m.v }); });
      return { label: c.id + (newest(c, "disk.initrd") !== undefined ? " (initrd compressed " + fmt(newest(c, "disk.initrd"), "B") + ")" : ""), parts: parts };
    }).filter(function (r) { return r.parts.length; });
  }

  function recentChanges(parent) {
    var from = Math.max(0, D.runs.length - 10), items = [];
    series.forEach(function (s) {
      if (!configShown(s.config)) return;
      s.changes.forEach(function (c) {
        var p = s.pts[c.i];
        if (p.run < from) return;
        var worse = s.metric.lower ? c.effect > 0 : c.effect < 0;
        items.push({ s: s, c: c, p: p, worse: worse });
      });
    });
    if (!items.length) return;
    html("h2", {}, parent, "Changes in the last 10 runs");
    var ul = html("ul", {}, parent);
    items.forEach(function (it) {
      var li = html("li", { "class": it.worse ? "bad" : "good" }, ul);
      var a = html("a", { href: rawLink(it.p.run) }, li, it.s.config.id + " · " + it.s.metric.name);
      li.appendChild(document.createTextNode(": " + (it.c.effect > 0 ? "+" : "") + it.c.effect + "% at " + runLabel(it.p.run) +
        (it.p.commit ? ", commit " + it.p.commit.slice(0, 12) : "") + " (confidence " + it.c.conf + ")"));
      a.title = "raw results of the run";
    });
  }

  function render() {
    var h = new URLSearchParams();
    keys.forEach(function (k) { if (F[k].value && F[k].value !== "0") h.set(k, F[k].value); });
    history.replaceState(null, "", "#" + h.toString());
    ["charts", "waterfalls", "memory", "disk", "changes"].forEach(function (id) { document.getElementById(id).textContent = ""; });
    var shown = D.configs.filter(configShown);
    series.forEach(function (s) {
      if (s.metric.name === F.metric.value && configShown(s.config)) chart(s, document.getElementById("charts"));
    });
    if (!document.getElementById("charts").childNodes.length) html("p", { "class": "empty" }, document.getElementById("charts"), "no configuration matches the filters");
    shown.forEach(function (c) { waterfall(c, document.getElementById("waterfalls")); });
    stacked(document.getElementById("memory"), memoryRows(shown), "B");
    stacked(document.getElementById("disk"), diskRows(shown), "B");
    recentChanges(document.getElementById("changes"));
  }
  keys.forEach(function (k) { F[k].addEventListener("change", render); });

  var n = D.runs.length;
  var shipped = D.sampleRuns < 0 ? "Every sample of every run." :
    "Every sample of the newest " + D.sampleRuns + " runs; older runs as medians with their 95% confidence band.";
  document.getElementById("summary").textContent = n ? n + " runs from " + date(0) + " to " + date(n - 1) + ", " +
    D.configs.length + " configurations, " + D.metrics.length + " metrics. " + shipped +
    " Each point links to its run's raw results." : "no runs recorded yet";
  document.getElementById("footer").textContent = "generated " + D.generated + " by kitrun dashboard";
  render();
  document.body.setAttribute("data-ready", "1");
})();
