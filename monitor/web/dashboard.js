// The dashboard page: one WebSocket to /dashboard/ws; every message updates the page in place.
"use strict";

const state = { samples: 0, points: [], market: null, instrument: "", connected: false };
window.shmex = state; // read by the browser test

const $ = (id) => document.getElementById(id);

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (cls) td.className = cls;
  return td;
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? n.toFixed(1) + " " + units[i] : n + " B";
}

function rate(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(2) + "M/s";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k/s";
  return v.toFixed(0) + "/s";
}

const fixed = (v, d, suffix = "") => (v === null || v === undefined ? "-" : v.toFixed(d) + suffix);

function renderProcesses(sample) {
  const body = $("processes").tBodies[0];
  body.replaceChildren();
  for (const p of sample.processes) {
    const row = body.insertRow();
    row.dataset.process = p.name;
    cell(row, p.name, "name");
    cell(row, p.state, "state-" + p.state);
    cell(row, p.pid);
    cell(row, fixed(p.uptime_s, 0, "s"));
    cell(row, p.restarts);
    cell(row, fixed(p.cpu_percent, 1));
    cell(row, bytes(p.rss_bytes));
    cell(row, p.threads);
    cell(row, p.ctx_voluntary === null ? null : p.ctx_voluntary + p.ctx_involuntary);
    cell(row, p.fds);
    cell(row, p.connections);
    cell(row, p.records_in);
    cell(row, p.records_in === null ? null : rate(p.records_in_rate));
    cell(row, fixed(p.control_rtt_us, 0, " µs"));
  }
}

function renderRings(sample) {
  const body = $("rings").tBodies[0];
  body.replaceChildren();
  for (const ring of sample.rings) {
    const readers = ring.readers.length ? ring.readers : [null];
    readers.forEach((reader, i) => {
      const row = body.insertRow();
      row.dataset.ring = ring.name;
      cell(row, i ? "" : ring.name, "name");
      cell(row, i ? "" : ring.published);
      cell(row, i ? "" : rate(ring.rate));
      cell(row, i ? "" : ((100 * ring.occupancy) / ring.capacity).toFixed(1) + "%");
      cell(row, i ? "" : ring.stalls);
      cell(row, i ? "" : ring.wakeups);
      cell(row, reader ? reader.name : "-", "name");
      cell(row, reader ? reader.cursor : "-");
      cell(row, reader ? reader.lag : "-");
      if (reader) {
        const text = (reader.alive ? "alive" : "dead") + (reader.stuck_s ? ", stuck " + reader.stuck_s.toFixed(0) + "s" : "");
        cell(row, text, reader.alive ? "alive" : "dead");
      } else cell(row, "-");
    });
  }
}

function renderAlerts(sample) {
  const list = $("alerts");
  list.replaceChildren();
  $("alert-count").textContent = sample.alerts.length;
  if (!sample.alerts.length) {
    const li = document.createElement("li"); li.className = "ok"; li.textContent = "no alerts";
    list.append(li);
    return;
  }
  for (const alert of sample.alerts) {
    const li = document.createElement("li");
    li.className = alert.severity;
    li.dataset.rule = alert.rule;
    li.textContent = alert.severity.toUpperCase() + "  " + alert.rule + "  " + alert.message;
    list.append(li);
  }
}

function renderCharts() {
  const pts = state.points.slice(-120);
  const times = pts.map((p) => p.wall_ms);
  Charts.lines($("throughput"), [{ name: "records/s", color: Charts.COLORS.blue, values: pts.map((p) => p.throughput) }], times);
  const last = pts[pts.length - 1];
  // Only the points measuring what the newest one measures (the source can change, see series.py).
  const same = last ? pts.filter((p) => p.latency_label === last.latency_label) : [];
  Charts.lines($("latency"), [
    { name: "p50 µs", color: Charts.COLORS.green, values: same.map((p) => p.latency_p50_us) },
    { name: "p99 µs", color: Charts.COLORS.violet, values: same.map((p) => p.latency_p99_us) },
  ], same.map((p) => p.wall_ms));
  if (last) {
    $("throughput-now").textContent = rate(last.throughput);
    $("latency-label").textContent = last.latency_label + "  p50 " + last.latency_p50_us.toFixed(0) + " µs  p99 " + last.latency_p99_us.toFixed(0) + " µs";
  }
}

function onSample(sample, point) {
  state.samples += 1;
  state.last = sample;
  $("prefix").textContent = sample.prefix;
  $("clock").textContent = new Date(sample.wall_ns / 1e6).toLocaleTimeString();
  renderProcesses(sample);
  renderRings(sample);
  renderAlerts(sample);
  if (point) { state.points.push(point); if (state.points.length > 600) state.points.shift(); }
  renderCharts();
  const d = sample.disk;
  $("disk").textContent = "journal " + bytes(d.journal_bytes) + "   history " + bytes(d.history_bytes) +
    "   disk free " + bytes(d.free_bytes) + " (" + (100 * d.free_fraction).toFixed(0) + "%)   supervisor " +
    (sample.supervisor_up ? "answering" : "NOT answering");
}

function onMarket(market) {
  if (market.instrument !== state.instrument) return;
  state.market = market;
  $("market-status").textContent = market.available ? "" : "no data: " + market.reason;
  $("kline-period").textContent = market.period ? market.period + "s" : "";
  if (market.available) {
    Charts.depth($("depth"), market.bids, market.asks);
    Charts.candles($("kline"), market.bars);
  } else {
    Charts.empty($("depth"), "no data");
    Charts.empty($("kline"), "no data");
  }
}

function select(instrument) {
  state.instrument = instrument;
  state.market = null;
  if (state.socket && state.connected) state.socket.send(JSON.stringify({ type: "select", instrument }));
  Charts.empty($("depth"), instrument ? "loading " + instrument : "choose an instrument");
  Charts.empty($("kline"), instrument ? "loading " + instrument : "choose an instrument");
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + "/dashboard/ws");
  state.socket = socket;
  socket.onopen = () => {
    state.connected = true;
    $("connection").textContent = "live"; $("connection").className = "badge on";
    if (state.instrument) select(state.instrument);
  };
  socket.onclose = () => {
    state.connected = false;
    $("connection").textContent = "disconnected"; $("connection").className = "badge off";
    setTimeout(connect, 1000);
  };
  socket.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") {
      state.points = msg.history.slice();
      const chooser = $("instrument");
      for (const id of msg.instruments) {
        if (![...chooser.options].some((o) => o.value === id)) chooser.add(new Option(id, id));
      }
      chooser.value = state.instrument;
      renderCharts();
    } else if (msg.type === "sample") onSample(msg.sample, msg.point);
    else if (msg.type === "market") onMarket(msg);
  };
}

$("instrument").addEventListener("change", (e) => select(e.target.value));
$("instrument-text").addEventListener("change", (e) => select(e.target.value.trim()));
const initial = new URLSearchParams(location.search).get("instrument");
select(initial || "");
connect();
