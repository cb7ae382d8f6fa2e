// The agent graph as SVG: agents are nodes, each source an edge (source -> receiver), laid out
// in layers (a node's layer is the longest path to it from an agent without sources).
// Trigger agents are marked; each node shows its last step status.

import { h, s } from "./dom.js";

const W = 190;
const H = 54;
const GAP_X = 70;
const GAP_Y = 26;

export function layers(agents) {
  const byId = new Map(agents.map((a) => [a.id, a]));
  const layer = new Map(agents.map((a) => [a.id, 0]));
  // Longest path by relaxation; at most |agents| rounds, so a cycle cannot loop forever.
  for (let round = 0; round < agents.length; round++) {
    let changed = false;
    for (const a of agents) {
      for (const src of a.sources) {
        if (!byId.has(src.id) || src.id === a.id) continue;
        const want = layer.get(src.id) + 1;
        if (want > layer.get(a.id) && want < agents.length) {
          layer.set(a.id, want);
          changed = true;
        }
      }
    }
    if (!changed) break;
  }
  const columns = [];
  for (const a of agents) {
    const l = layer.get(a.id);
    (columns[l] = columns[l] || []).push(a);
  }
  return columns.filter(Boolean);
}

export function diagram(agents, triggers, lastStatus) {
  const triggerOf = new Map(triggers.filter((t) => t.agentId).map((t) => [t.agentId, t]));
  const columns = layers(agents);
  const pos = new Map();
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  columns.forEach((column, x) => {
    const offset = ((tallest - column.length) * (H + GAP_Y)) / 2;
    column.forEach((a, y) => pos.set(a.id, { x: 10 + x * (W + GAP_X), y: 10 + offset + y * (H + GAP_Y) }));
  });
  const width = 20 + columns.length * W + Math.max(0, columns.length - 1) * GAP_X;
  const height = 20 + tallest * H + (tallest - 1) * GAP_Y;
  const svg = s("svg", {
    class: "diagram", role: "img", viewBox: `0 0 ${width} ${height}`, width, height,
    "aria-labelledby": "diagram-svg-title",
  }, s("title", { id: "diagram-svg-title" }, `Agent graph: ${agents.length} agents`),
  s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
    s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }))));
  for (const a of agents) {
    for (const src of a.sources) {
      const from = pos.get(src.id);
      const to = pos.get(a.id);
      if (!from || !to) continue;
      const x1 = from.x + W;
      const y1 = from.y + H / 2;
      const x2 = to.x;
      const y2 = to.y + H / 2;
      const mid = (x1 + x2) / 2;
      const d = x2 > x1 ? `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`
        : `M${x1},${y1} C${x1 + 60},${y1 - 60} ${x2 - 60},${y2 - 60} ${x2},${y2}`;
      svg.append(s("path", { d, class: "edge", "marker-end": "url(#arrow)", "data-from": src.id, "data-to": a.id }));
    }
  }
  for (const a of agents) {
    const p = pos.get(a.id);
    const status = lastStatus.get(a.id);
    const trigger = triggerOf.get(a.id);
    const classes = ["node", status ? `status-${status.toLowerCase()}` : "status-none", trigger ? "trigger" : "", a.disabled ? "disabled" : ""];
    svg.append(s("g", { class: classes.join(" "), transform: `translate(${p.x},${p.y})`, "data-agent": a.name },
      s("title", {}, `${a.name} (${a.type})${trigger ? `, ${trigger.type.toLowerCase()} trigger` : ""}, last status ${status || "none"}`),
      s("rect", { width: W, height: H, rx: 8 }),
      s("text", { x: 12, y: 21, class: "name" }, (trigger ? "⚡ " : "") + clip(a.name, 22)),
      s("text", { x: 12, y: 41, class: "meta" }, `${clip(a.type, 14)} · ${status ? status.toLowerCase() : "no runs"}`)));
  }
  // The same graph as text, for screen readers and keyboard users.
  const list = h("ul", { class: "visually-hidden", "aria-label": "Agents and their sources" },
    agents.map((a) => h("li", {}, `${a.name} (${a.type})`,
      triggerOf.has(a.id) ? ", trigger" : "",
      `, last status ${(lastStatus.get(a.id) || "none").toLowerCase()}`,
      a.sources.length ? `, receives from ${a.sources.map((src) => agents.find((x) => x.id === src.id)?.name || "?").join(", ")}` : "")));
  return h("figure", { class: "diagram-box" }, h("div", { class: "scroll", tabindex: 0, "aria-label": "Agent diagram" }, svg), list);
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}
