// The model graph: each entity a box listing its relations, attributes and permissions; edges
// say what each member depends on. Drawn by hand in SVG with a layered layout: an entity sits
// one column right of everything it refers to, so most edges run right to left.

import { h, svg } from "./dom.js";

const BOX_W = 140;
const HEAD_H = 26;
const ROW_H = 20;
const GAP_X = 80;
const GAP_Y = 28;
const MARGIN = 24;

/** Every leaf of a permission's rewrite tree. */
function leaves(child, out = []) {
  if (child.rewrite) for (const c of child.rewrite.children) leaves(c, out);
  else if (child.leaf) out.push(child.leaf);
  return out;
}

/** The graph's edges: {from: [entity, member], to: [entity, member|null], kind, label}. */
export function edgesOf(schema) {
  const defs = schema.entity_definitions;
  const edges = [];
  for (const [name, def] of Object.entries(defs)) {
    for (const [rel, r] of Object.entries(def.relations)) {
      for (const ref of r.relation_references) {
        edges.push({ from: [name, rel], to: [ref.type, ref.relation || null], kind: "rel", label: "" });
      }
    }
    for (const [perm, p] of Object.entries(def.permissions)) {
      for (const leaf of leaves(p.child)) {
        if (leaf.computed_user_set) {
          edges.push({ from: [name, perm], to: [name, leaf.computed_user_set.relation], kind: "ref", label: "" });
        } else if (leaf.tuple_to_user_set) {
          const via = leaf.tuple_to_user_set.tupleSet.relation;
          const target = leaf.tuple_to_user_set.computed.relation;
          for (const ref of (def.relations[via] || { relation_references: [] }).relation_references) {
            if (defs[ref.type] && !ref.relation) {
              edges.push({ from: [name, perm], to: [ref.type, target], kind: "arrow", label: `${via}.${target}` });
            }
          }
        } else if (leaf.computed_attribute) {
          edges.push({ from: [name, perm], to: [name, leaf.computed_attribute.name], kind: "ref", label: "" });
        } else if (leaf.call) {
          for (const arg of leaf.call.arguments) {
            if (arg.computed_attribute) {
              edges.push({ from: [name, perm], to: [name, arg.computed_attribute.name], kind: "ref", label: `${leaf.call.rule_name}()` });
            }
          }
        }
      }
    }
  }
  return edges.filter((e) => defs[e.to[0]]);
}

/** Column of each entity: one right of the rightmost entity it refers to (cycles cut). */
function layers(defs, edges) {
  const deps = new Map(Object.keys(defs).map((n) => [n, new Set()]));
  for (const e of edges) if (e.to[0] !== e.from[0]) deps.get(e.from[0]).add(e.to[0]);
  const layer = new Map();
  const visiting = new Set();
  const visit = (n) => {
    if (layer.has(n)) return layer.get(n);
    if (visiting.has(n)) return -1; // a cycle: this edge does not push n right
    visiting.add(n);
    let at = 0;
    for (const d of deps.get(n)) at = Math.max(at, visit(d) + 1);
    visiting.delete(n);
    layer.set(n, at);
    return at;
  };
  for (const n of Object.keys(defs)) visit(n);
  return layer;
}

function members(def) {
  return [
    ...Object.keys(def.relations).map((m) => [m, "relation"]),
    ...Object.keys(def.attributes || {}).map((m) => [m, "attribute"]),
    ...Object.keys(def.permissions).map((m) => [m, "permission"]),
  ];
}

/** Draws `schema` (Permify's SchemaDefinition JSON, or null) into `container`, and lists its
 * edges as text in `textList`, for readers who cannot see the drawing. */
export function renderGraph(container, textList, schema) {
  if (!schema || !Object.keys(schema.entity_definitions).length) {
    container.replaceChildren(h("p", { class: "muted" }, "No schema yet."));
    textList.replaceChildren();
    return;
  }
  const defs = schema.entity_definitions;
  const edges = edgesOf(schema);
  const layer = layers(defs, edges);
  const columns = [];
  for (const name of Object.keys(defs)) {
    const at = layer.get(name);
    while (columns.length <= at) columns.push([]);
    columns[at].push(name);
  }
  const boxes = new Map(); // entity -> {x, y, rows: Map(member -> y)}
  let height = 0;
  columns.forEach((names, col) => {
    let y = MARGIN;
    for (const name of names) {
      const x = MARGIN + col * (BOX_W + GAP_X);
      const rows = new Map();
      members(defs[name]).forEach(([m], i) => rows.set(m, y + HEAD_H + i * ROW_H + ROW_H / 2));
      const boxH = HEAD_H + Math.max(1, rows.size) * ROW_H + 6;
      boxes.set(name, { x, y, h: boxH, col, rows });
      y += boxH + GAP_Y;
    }
    height = Math.max(height, y);
  });
  const width = MARGIN * 2 + columns.length * BOX_W + (columns.length - 1) * GAP_X + 40;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Model graph: ${Object.keys(defs).length} entities, ${edges.length} dependencies (listed as text below)`,
  });
  // Scaled to fit its column, but never below 3/4 (then the column scrolls). Set through the
  // CSSOM, which the page's CSP allows (a style attribute it would not).
  root.style.maxWidth = `${width}px`;
  root.style.minWidth = `${Math.round(width * 0.75)}px`;
  root.append(svg("defs", {}, ...["rel", "ref", "arrow"].map((kind) =>
    svg("marker", { id: `head-${kind}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: `head ${kind}` })))));
  const edgeLayer = svg("g", { class: "edges" });
  root.append(edgeLayer);
  for (const [name, box] of boxes) {
    const group = svg("g", { class: "entity", "data-entity": name });
    group.append(
      svg("rect", { x: box.x, y: box.y, width: BOX_W, height: box.h, rx: 6, class: "box" }),
      svg("rect", { x: box.x, y: box.y, width: BOX_W, height: HEAD_H, rx: 6, class: "head-bg" }),
      svg("text", { x: box.x + 10, y: box.y + 17, class: "entity-name" }, name),
    );
    for (const [m, kind] of members(defs[name])) {
      const y = box.rows.get(m);
      const mark = { relation: "R", attribute: "A", permission: "P" }[kind];
      group.append(svg("g", { class: `member ${kind}`, "data-node": `${name}.${m}` },
        svg("title", {}, `${kind} ${name}.${m}`),
        svg("text", { x: box.x + 10, y: y + 4, class: "kind" }, mark),
        svg("text", { x: box.x + 28, y: y + 4, class: "member-name" }, m)));
    }
    root.append(group);
  }
  const anchor = (entity, member) => {
    const box = boxes.get(entity);
    const y = member && box.rows.has(member) ? box.rows.get(member) : box.y + HEAD_H / 2;
    return { box, y };
  };
  const loops = new Map(); // per box, how many self-edges drawn so far (to fan them out)
  for (const e of edges) {
    const a = anchor(...e.from);
    const b = anchor(e.to[0], e.to[1]);
    let d;
    let labelAt;
    if (a.box === b.box) {
      const n = loops.get(a.box) || 0;
      loops.set(a.box, n + 1);
      const bulge = a.box.x + BOX_W + 14 + (n % 4) * 7;
      const right = a.box.x + BOX_W;
      d = `M${right},${a.y} C${bulge},${a.y} ${bulge},${b.y} ${right},${b.y}`;
      labelAt = [bulge + 4, (a.y + b.y) / 2];
    } else if (b.box.col < a.box.col) {
      const x1 = a.box.x;
      const x2 = b.box.x + BOX_W;
      const mid = (x1 + x2) / 2;
      d = `M${x1},${a.y} C${mid},${a.y} ${mid},${b.y} ${x2},${b.y}`;
      labelAt = [mid, (a.y + b.y) / 2 - 4];
    } else if (b.box.col > a.box.col) {
      const x1 = a.box.x + BOX_W;
      const x2 = b.box.x;
      const mid = (x1 + x2) / 2;
      d = `M${x1},${a.y} C${mid},${a.y} ${mid},${b.y} ${x2},${b.y}`;
      labelAt = [mid, (a.y + b.y) / 2 - 4];
    } else {
      const x = a.box.x;
      const out = x - 40;
      d = `M${x},${a.y} C${out},${a.y} ${out},${b.y} ${x},${b.y}`;
      labelAt = [out, (a.y + b.y) / 2];
    }
    const target = `${e.to[0]}${e.to[1] ? `.${e.to[1]}` : ""}`;
    edgeLayer.append(svg("g", { class: `edge ${e.kind}`, "data-edge": `${e.from.join(".")}->${target}` },
      svg("title", {}, `${e.from.join(".")} \u2192 ${target}${e.label ? ` (${e.label})` : ""}`),
      svg("path", { d, "marker-end": `url(#head-${e.kind})` }),
      e.label && e.kind === "arrow" ? svg("text", { x: labelAt[0], y: labelAt[1], class: "edge-label", "text-anchor": "middle" }, e.label) : null));
  }
  container.replaceChildren(root);
  textList.replaceChildren(...edges.map((e) => {
    const target = `${e.to[0]}${e.to[1] ? `#${e.to[1]}` : ""}`;
    const how = { rel: "may hold", ref: "names", arrow: `follows ${e.label} to` }[e.kind];
    return h("li", {}, `${e.from.join(".")} ${how} ${target}`);
  }));
}
