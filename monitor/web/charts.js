// Small hand-written canvas charts (no library, no network): lines, depth, candlesticks.
// Each draw function clears its canvas, draws, and marks it with data-drawn="<n points>".
"use strict";

const Charts = (() => {
  const COLORS = { grid: "#2a333d", text: "#8795a1", green: "#3fb950", red: "#f85149",
                   blue: "#58a6ff", violet: "#bc8cff", yellow: "#d29922" };
  const PAD = { left: 58, right: 12, top: 12, bottom: 24 };

  function frame(canvas) {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.font = "11px monospace";
    return { ctx, w: canvas.width - PAD.left - PAD.right, h: canvas.height - PAD.top - PAD.bottom };
  }

  function nice(value) {
    if (value <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= value) return m * p;
    return 10 * p;
  }

  function label(value) {
    const a = Math.abs(value);
    if (a >= 1e9) return (value / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (value / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (value / 1e3).toFixed(1) + "k";
    return a >= 10 || value === 0 ? value.toFixed(0) : value.toFixed(1);
  }

  function yAxis(ctx, w, h, lo, hi, format = label) {
    ctx.strokeStyle = COLORS.grid; ctx.fillStyle = COLORS.text; ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = PAD.top + h - (h * i) / 4;
      ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(PAD.left + w, y); ctx.stroke();
      ctx.fillText(format(lo + ((hi - lo) * i) / 4), 4, y + 4);
    }
  }

  function empty(canvas, text) {
    const { ctx } = frame(canvas);
    ctx.fillStyle = COLORS.text; ctx.font = "14px monospace";
    ctx.fillText(text, canvas.width / 2 - ctx.measureText(text).width / 2, canvas.height / 2);
    canvas.dataset.drawn = "0";
  }

  // series: [{name, color, values: [number]}], times: [ms]
  function lines(canvas, series, times) {
    const n = times.length;
    if (n === 0) { empty(canvas, "waiting for samples"); return; }
    const { ctx, w, h } = frame(canvas);
    const top = nice(Math.max(0, ...series.flatMap((s) => s.values)));
    yAxis(ctx, w, h, 0, top);
    const x = (i) => PAD.left + (n === 1 ? w : (w * i) / (n - 1));
    const y = (v) => PAD.top + h - (h * v) / top;
    series.forEach((s, k) => {
      ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
      s.values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
      ctx.stroke();
      ctx.fillStyle = s.color; ctx.fillText(s.name, PAD.left + 8 + k * 110, PAD.top + 12);
    });
    ctx.fillStyle = COLORS.text;
    ctx.fillText(new Date(times[0]).toLocaleTimeString(), PAD.left, PAD.top + h + 16);
    const last = new Date(times[n - 1]).toLocaleTimeString();
    ctx.fillText(last, PAD.left + w - ctx.measureText(last).width, PAD.top + h + 16);
    canvas.dataset.drawn = String(n);
  }

  // bids/asks: [[price, qty]] best first; cumulative quantity as steps either side of the mid.
  function depth(canvas, bids, asks) {
    if (!bids.length && !asks.length) { empty(canvas, "no data"); return; }
    const { ctx, w, h } = frame(canvas);
    const cum = (levels) => { let t = 0; return levels.map(([p, q]) => [p, (t += q)]); };
    const b = cum(bids), a = cum(asks);
    const prices = [...b, ...a].map((l) => l[0]);
    const lo = Math.min(...prices), hi = Math.max(...prices), span = Math.max(1, hi - lo);
    const top = nice(Math.max(...[...b, ...a].map((l) => l[1])));
    yAxis(ctx, w, h, 0, top);
    const x = (p) => PAD.left + (w * (p - lo)) / span;
    const y = (q) => PAD.top + h - (h * q) / top;
    const side = (levels, color) => {
      if (!levels.length) return;
      ctx.beginPath(); ctx.moveTo(x(levels[0][0]), y(0));
      let previous = 0;
      for (const [p, q] of levels) { ctx.lineTo(x(p), y(previous)); ctx.lineTo(x(p), y(q)); previous = q; }
      ctx.lineTo(x(levels[levels.length - 1][0]), y(0)); ctx.closePath();
      ctx.fillStyle = color + "55"; ctx.fill(); ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.stroke();
    };
    side(b, COLORS.green); side(a, COLORS.red);
    ctx.fillStyle = COLORS.text;
    ctx.fillText(String(lo), PAD.left, PAD.top + h + 16);
    ctx.fillText(String(hi), PAD.left + w - ctx.measureText(String(hi)).width, PAD.top + h + 16);
    canvas.dataset.drawn = String(bids.length + asks.length);
  }

  // bars: [{datetime, open, high, low, close, volume}] oldest first.
  function candles(canvas, bars) {
    if (!bars.length) { empty(canvas, "no data"); return; }
    const { ctx, w, h } = frame(canvas);
    const lo = Math.min(...bars.map((b) => b.low)), hi = Math.max(...bars.map((b) => b.high));
    const pad = Math.max(1, (hi - lo) * 0.05), bottom = lo - pad, span = hi + pad - bottom;
    yAxis(ctx, w, h, bottom, bottom + span, (v) => String(Math.round(v)));
    const slot = w / Math.max(bars.length, 20), body = Math.max(2, slot * 0.6);
    const y = (p) => PAD.top + h - (h * (p - bottom)) / span;
    bars.forEach((bar, i) => {
      const cx = PAD.left + slot * i + slot / 2;
      const color = bar.close >= bar.open ? COLORS.green : COLORS.red;
      ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(cx, y(bar.high)); ctx.lineTo(cx, y(bar.low)); ctx.stroke();
      const top = y(Math.max(bar.open, bar.close)), height = Math.max(1, Math.abs(y(bar.open) - y(bar.close)));
      ctx.fillRect(cx - body / 2, top, body, height);
    });
    canvas.dataset.drawn = String(bars.length);
  }

  return { lines, depth, candles, empty, COLORS };
})();
