// The admin's live dashboard (mqant.dashboard): polls the figures of every live process and
// draws them as plain SVG lines. Counters arrive as totals per process; rates are the
// differences between two polls of the same process (a process that restarts answers under
// a new key, and a counter that goes down is taken as restarted from zero). Each chart keeps
// the last WINDOW_SECONDS of points. No library, no inline code (the page has a CSP).
(function () {
  "use strict";

  const WINDOW_SECONDS = 300;
  const MAX_POINTS = 600; // per series, whatever the poll interval
  const MAX_SERIES = 16; // per chart: the others are left out of it
  const WIDTH = 600;
  const HEIGHT = 160;
  const SVG = "http://www.w3.org/2000/svg";
  const ERRORS = [
    ["call_errors", "call errors"],
    ["rpc_errors", "RPC errors"],
    ["refused", "refused connections"],
    ["pushes_dropped", "dropped pushes"],
    ["layer_errors", "layer errors"],
  ];

  const root = document.getElementById("mqant-dashboard");
  if (!root) return;
  const url = root.dataset.url;
  const poll = Math.max(1, Number(root.dataset.poll) || 2) * 1000;
  const status = document.getElementById("dashboard-status");
  const previous = new Map(); // process key -> its last snapshot
  const charts = {};

  function Chart(figure) {
    this.figure = figure;
    this.unit = figure.dataset.unit || "";
    this.series = new Map(); // name -> {points: [[t, v|null]], index}
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.setAttribute("viewBox", "0 0 " + WIDTH + " " + HEIGHT);
    this.svg.setAttribute("role", "img");
    this.svg.setAttribute("aria-label", figure.querySelector("figcaption").textContent);
    this.legend = document.createElement("ul");
    this.legend.className = "legend";
    figure.append(this.svg, this.legend);
  }

  Chart.prototype.add = function (t, values) {
    for (const [name, value] of Object.entries(values)) {
      let line = this.series.get(name);
      if (!line) {
        if (this.series.size >= MAX_SERIES) continue;
        line = { points: [], index: this.series.size };
        this.series.set(name, line);
      }
      line.points.push([t, value]);
    }
    for (const [name, line] of this.series) {
      while (line.points.length && (line.points.length > MAX_POINTS || line.points[0][0] < t - WINDOW_SECONDS)) {
        line.points.shift();
      }
      if (!line.points.length) this.series.delete(name);
    }
  };

  Chart.prototype.draw = function (now) {
    let top = 0;
    for (const line of this.series.values()) {
      for (const [, v] of line.points) if (v !== null && v > top) top = v;
    }
    top = niceCeiling(top);
    this.svg.replaceChildren(...grid(top, this.unit));
    this.legend.replaceChildren();
    let latest = 0;
    for (const [name, line] of this.series) {
      const path = document.createElementNS(SVG, "path");
      const drawn = pathOf(line.points, now, top);
      path.setAttribute("d", drawn.d || "M0 " + HEIGHT);
      path.setAttribute("class", "line s" + (line.index % 8));
      path.dataset.series = name;
      path.dataset.points = String(drawn.count);
      this.svg.append(path);
      const last = line.points[line.points.length - 1];
      const value = last && last[0] === now ? last[1] : null;
      if (value !== null && value > latest) latest = value;
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch s" + (line.index % 8);
      item.append(swatch, name + ": " + (value === null ? "–" : format(value) + this.unit));
      this.legend.append(item);
    }
    this.figure.dataset.latest = String(latest);
    this.figure.querySelector(".latest").textContent = "(" + format(latest) + this.unit + " now)";
  };

  function pathOf(points, now, top) {
    let d = "";
    let count = 0;
    let gap = true;
    for (const [t, v] of points) {
      if (v === null) {
        gap = true;
        continue;
      }
      const x = WIDTH - ((now - t) / WINDOW_SECONDS) * WIDTH;
      const y = HEIGHT - (top > 0 ? (v / top) * (HEIGHT - 10) : 0);
      d += (gap ? "M" : "L") + x.toFixed(1) + " " + y.toFixed(1);
      gap = false;
      count += 1;
    }
    return { d: d, count: count };
  }

  function grid(top, unit) {
    const parts = [];
    for (const fraction of [0, 0.5, 1]) {
      const y = HEIGHT - fraction * (HEIGHT - 10);
      const rule = document.createElementNS(SVG, "line");
      rule.setAttribute("x1", "0");
      rule.setAttribute("x2", String(WIDTH));
      rule.setAttribute("y1", y.toFixed(1));
      rule.setAttribute("y2", y.toFixed(1));
      rule.setAttribute("class", "rule");
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", "2");
      label.setAttribute("y", (y - 2).toFixed(1));
      label.setAttribute("class", "axis");
      label.textContent = format(top * fraction) + unit;
      parts.push(rule, label);
    }
    return parts;
  }

  function niceCeiling(value) {
    if (value <= 0) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  function format(value) {
    if (value >= 100) return String(Math.round(value));
    if (value >= 10) return value.toFixed(1);
    return value.toFixed(2);
  }

  // What grew since the last poll: a counter that went down was restarted from zero.
  function grew(now, before) {
    return now >= before ? now - before : now;
  }

  function histogramDelta(now, before) {
    const counts = new Map();
    const earlier = new Map((before.buckets || []).map(([le, c]) => [String(le), c]));
    for (const [le, c] of now.buckets || []) counts.set(String(le), grew(c, earlier.get(String(le)) || 0));
    return { count: grew(now.count, before.count), sum: grew(now.sum, before.sum), buckets: counts };
  }

  function addHistogram(total, part) {
    total.count += part.count;
    total.sum += part.sum;
    for (const [le, c] of part.buckets) total.buckets.set(le, (total.buckets.get(le) || 0) + c);
  }

  // Prometheus's histogram_quantile: linear within the bucket the rank falls in.
  function quantile(q, histogram) {
    const bounds = [...histogram.buckets.entries()]
      .map(([le, c]) => [le === "+Inf" ? Infinity : Number(le), c])
      .sort((a, b) => a[0] - b[0]);
    if (!bounds.length) return null;
    const total = bounds[bounds.length - 1][1];
    if (total <= 0) return null;
    const rank = q * total;
    let lower = 0;
    let below = 0;
    for (const [le, c] of bounds) {
      if (c >= rank) {
        if (le === Infinity) return lower;
        return lower + (le - lower) * ((rank - below) / Math.max(c - below, 1e-9));
      }
      lower = le;
      below = c;
    }
    return lower;
  }

  function update(data) {
    const now = data.at;
    const rows = data.processes.filter((row) => row.answered);
    const connections = {};
    const rates = { calls: 0, rpc_calls: 0, fanout: 0 };
    for (const [key] of ERRORS) rates[key] = 0;
    const calls = { count: 0, sum: 0, buckets: new Map() };
    const rpcs = { count: 0, sum: 0, buckets: new Map() };
    let measured = false;
    for (const row of rows) {
      const s = row.snapshot;
      for (const [gate, transports] of Object.entries(s.connections)) {
        const name = gate === s.process ? gate : gate + " (" + s.process + ")";
        connections[name] = Object.values(transports).reduce((a, b) => a + b, 0);
      }
      const before = previous.get(row.key);
      const seconds = before ? s.at - before.at : 0;
      if (seconds > 0) {
        measured = true;
        for (const key of Object.keys(rates)) rates[key] += grew(s[key], before[key]) / seconds;
        addHistogram(calls, histogramDelta(s.call_seconds, before.call_seconds));
        addHistogram(rpcs, histogramDelta(s.rpc_seconds, before.rpc_seconds));
      }
    }
    // A process silent this once keeps its last totals; one no longer listed is forgotten.
    const listed = new Set(data.processes.map((row) => row.key));
    for (const key of previous.keys()) if (!listed.has(key)) previous.delete(key);
    for (const row of rows) previous.set(row.key, row.snapshot);
    charts.connections.add(now, connections);
    if (measured) {
      charts.calls.add(now, { calls: rates.calls, RPCs: rates.rpc_calls });
      charts.fanout.add(now, { deliveries: rates.fanout });
      const errors = {};
      for (const [key, name] of ERRORS) errors[name] = rates[key];
      charts.errors.add(now, errors);
      const ms = (value) => (value === null ? null : value * 1000);
      charts.latency.add(now, {
        "call p50": ms(quantile(0.5, calls)),
        "call p95": ms(quantile(0.95, calls)),
        "RPC mean": rpcs.count > 0 ? (rpcs.sum / rpcs.count) * 1000 : null,
      });
    }
    for (const chart of Object.values(charts)) chart.draw(now);
    showProcesses(data);
  }

  function showProcesses(data) {
    const body = document.querySelector("#dashboard-processes tbody");
    body.replaceChildren();
    const silent = [];
    for (const row of data.processes) {
      const s = row.snapshot;
      const cells = [row.process || row.key, row.answered ? "yes" : "no: " + row.error];
      if (s) {
        const open = Object.values(s.connections)
          .flatMap((transports) => Object.values(transports))
          .reduce((a, b) => a + b, 0);
        cells.push(...[open, s.calls, s.call_errors].map((n) => String(Math.round(n))));
        cells.push(format(s.loop_lag * 1000) + " ms", String(Math.round(s.storage_queue)));
      } else {
        silent.push((row.process || row.key) + " (" + row.error + ")");
        cells.push("–", "–", "–", "–", "–");
      }
      const tr = document.createElement("tr");
      tr.dataset.answered = String(row.answered);
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      body.append(tr);
    }
    const answered = data.processes.length - silent.length;
    let text = "Updated " + new Date(data.at * 1000).toLocaleTimeString() + ": ";
    text += answered + " process" + (answered === 1 ? "" : "es") + " answered";
    if (silent.length) text += "; no answer from " + silent.join(", ");
    if (data.not_asked) text += "; " + data.not_asked + " more not asked";
    status.textContent = text + ".";
  }

  async function tick() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 10000);
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        signal: abort.signal,
      });
      if (response.status === 403) {
        status.textContent = "Refused: the dashboard is for staff; log in again.";
      } else if (!response.ok) {
        status.textContent = "The figures could not be fetched (HTTP " + response.status + ").";
      } else {
        update(await response.json());
      }
    } catch (err) {
      status.textContent = "The figures could not be fetched: " + err.message;
    } finally {
      clearTimeout(timer);
      setTimeout(tick, poll);
    }
  }

  for (const figure of root.querySelectorAll("figure.chart")) {
    charts[figure.id.replace("chart-", "")] = new Chart(figure);
  }
  tick();
})();
