// Processes per hour as a small SVG bar chart: completed and failed side by side.

import { h, s } from "./dom.js";

export function activityChart(buckets) {
  const W = 720;
  const H = 160;
  const pad = 24;
  const top = Math.max(1, ...buckets.map((b) => Math.max(b.completed, b.failed)));
  const slot = (W - pad * 2) / Math.max(1, buckets.length);
  const bar = Math.max(2, slot / 2 - 2);
  const y = (n) => H - pad - (n / top) * (H - pad * 2);
  const total = buckets.reduce((sum, b) => sum + b.completed + b.failed, 0);
  const svg = s("svg", { class: "chart-svg", role: "img", viewBox: `0 0 ${W} ${H}`, width: W, height: H, "aria-labelledby": "chart-svg-title" },
    s("title", { id: "chart-svg-title" }, `${total} processes ended in the last ${buckets.length} hours`),
    s("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, class: "axis" }),
    s("text", { x: 2, y: pad, class: "tick" }, top));
  buckets.forEach((b, i) => {
    const x = pad + i * slot;
    const hour = new Date(b.hour).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    if (b.completed) {
      svg.append(s("rect", { x, y: y(b.completed), width: bar, height: H - pad - y(b.completed), class: "bar completed" },
        s("title", {}, `${hour}: ${b.completed} completed`)));
    }
    if (b.failed) {
      svg.append(s("rect", { x: x + bar + 1, y: y(b.failed), width: bar, height: H - pad - y(b.failed), class: "bar failed" },
        s("title", {}, `${hour}: ${b.failed} failed`)));
    }
    if (i % 6 === 0) svg.append(s("text", { x, y: H - 6, class: "tick" }, hour));
  });
  return h("figure", {}, svg,
    h("figcaption", {}, h("span", { class: "key completed" }, "completed"), " ", h("span", { class: "key failed" }, "failed")));
}
