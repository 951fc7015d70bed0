// The relations layer's view of one entity: its relations in both directions with metadata;
// its ordered lists reordered by drag and drop (or Alt+Up / Alt+Down), each move sent as a
// `connect` with a position and the list shown again as the server stores it.

import { h, onSubmit, parseEntity, showError, showOk } from "./dom.js";

const LIMIT = 200;

function metadataText(metadata) {
  return metadata === null || metadata === undefined ? "\u2014" : JSON.stringify(metadata);
}

export class RelationsPanel {
  constructor(api, root, state) {
    this.api = api;
    this.state = state;
    this.form = root.querySelector("#relations-form");
    this.status = root.querySelector("#relations-status");
    this.view = root.querySelector("#relations");
    this.entity = null;
    this.dragged = null; // {role, target}
    onSubmit(this.form, this.status, (v) => this.show(v.entity.trim()));
  }

  path(entity) {
    return this.api.t(`/entities/${encodeURIComponent(entity)}/relations`);
  }

  async show(entity, note) {
    parseEntity(entity); // says what a well-formed entity looks like
    const answer = await this.api.get(`${this.path(entity)}?direction=both&limit=${LIMIT}`);
    this.entity = entity;
    const outgoing = new Map();
    const incoming = [];
    for (const row of answer.data) {
      if (row.direction === "incoming") incoming.push(row);
      else {
        if (!outgoing.has(row.relation_type)) outgoing.set(row.relation_type, []);
        outgoing.get(row.relation_type).push(row);
      }
    }
    const parts = [];
    for (const [role, rows] of outgoing) parts.push(this.list(role, rows));
    if (!outgoing.size) parts.push(h("p", { class: "muted" }, `${entity} has no outgoing relations.`));
    parts.push(h("h3", {}, "Incoming"));
    parts.push(incoming.length ? h("table", { class: "table" },
      h("caption", { class: "sr-only" }, `Relations to ${entity}`),
      h("thead", {}, h("tr", {}, ...["Source", "Relation", "Position in its list", "Metadata"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, ...incoming.map((r) => h("tr", { dataset: { id: r.id } },
        h("td", {}, r.source_entity_id), h("td", {}, r.relation_type + (r.is_mirror ? " (mirror)" : "")),
        h("td", {}, r.position === null ? "\u2014" : String(r.position)), h("td", {}, h("code", {}, metadataText(r.metadata)))))))
      : h("p", { class: "muted" }, `No relations point at ${entity}.`));
    if (answer.meta.pagination.has_more) parts.push(h("p", { class: "muted" }, `Only the first ${LIMIT} are shown.`));
    this.view.replaceChildren(...parts);
    showOk(this.status, note || `${answer.data.length} relation${answer.data.length === 1 ? "" : "s"} of ${entity}`);
  }

  list(role, rows) {
    const ordered = rows.every((r) => r.position !== null);
    rows.sort((a, b) => (a.position ?? 0) - (b.position ?? 0));
    const items = rows.map((r, i) => {
      const label = `${r.target_entity_id}${r.position !== null ? `, position ${r.position}` : ""}`;
      const item = h("li", {
        class: "relation", tabindex: ordered ? 0 : null, draggable: ordered ? "true" : null,
        dataset: { target: r.target_entity_id, position: r.position ?? "" }, "aria-label": `${role} ${label}`,
      },
      ordered ? h("span", { class: "grip", "aria-hidden": "true" }, "\u2630") : null,
      h("span", { class: "pos" }, r.position === null ? "" : `${r.position}.`),
      h("span", { class: "target" }, r.target_entity_id),
      r.is_mirror ? h("span", { class: "tag" }, "mirror") : null,
      h("code", { class: "meta" }, metadataText(r.metadata)),
      ordered ? h("span", { class: "moves" },
        h("button", { type: "button", disabled: i === 0, "aria-label": `Move ${r.target_entity_id} up`,
          onclick: () => this.move(role, r.target_entity_id, { before: rows[i - 1].target_entity_id }) }, "\u2191"),
        h("button", { type: "button", disabled: i === rows.length - 1, "aria-label": `Move ${r.target_entity_id} down`,
          onclick: () => this.move(role, r.target_entity_id, { after: rows[i + 1].target_entity_id }) }, "\u2193")) : null);
      if (ordered) this.makeMovable(item, role, r, rows, i);
      return item;
    });
    return h("section", { class: "role" },
      h("h3", {}, role, h("span", { class: "muted" }, ordered ? " (ordered)" : " (to-one)")),
      h("ol", { class: "relation-list", dataset: { role }, "aria-label": `${role} of ${this.entity}` }, ...items));
  }

  makeMovable(item, role, row, rows, index) {
    item.addEventListener("dragstart", (event) => {
      this.dragged = { role, target: row.target_entity_id, index };
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", row.target_entity_id);
      item.classList.add("dragging");
    });
    item.addEventListener("dragend", () => item.classList.remove("dragging"));
    item.addEventListener("dragover", (event) => {
      if (this.dragged && this.dragged.role === role) {
        event.preventDefault();
        item.classList.add("drop");
      }
    });
    item.addEventListener("dragleave", () => item.classList.remove("drop"));
    item.addEventListener("drop", (event) => {
      event.preventDefault();
      item.classList.remove("drop");
      const dragged = this.dragged;
      this.dragged = null;
      if (!dragged || dragged.role !== role || dragged.target === row.target_entity_id) return;
      // Dropped on a row below where it was: it goes after that row; above: before it.
      const position = dragged.index < index ? { after: row.target_entity_id } : { before: row.target_entity_id };
      this.move(role, dragged.target, position);
    });
    item.addEventListener("keydown", (event) => {
      if (!event.altKey) return;
      if (event.key === "ArrowUp" && index > 0) {
        event.preventDefault();
        this.move(role, row.target_entity_id, { before: rows[index - 1].target_entity_id }, true);
      } else if (event.key === "ArrowDown" && index < rows.length - 1) {
        event.preventDefault();
        this.move(role, row.target_entity_id, { after: rows[index + 1].target_entity_id }, true);
      }
    });
  }

  async move(role, target, position, keepFocus = false) {
    try {
      const answer = await this.api.put(this.path(this.entity), { data: { [role]: { connect: [{ id: target, position }] } } });
      this.state.wrote(answer.meta.snap_token);
      const [where, ref] = Object.entries(position)[0];
      const order = (answer.data[role] || []).map((r) => r.target_entity_id).join(", ");
      await this.show(this.entity, `moved ${target} ${where} ${ref}; ${role} is now ${order} (snap token ${answer.meta.snap_token})`);
      if (keepFocus) {
        const moved = this.view.querySelector(`ol[data-role="${CSS.escape(role)}"] li[data-target="${CSS.escape(target)}"]`);
        if (moved) moved.focus();
      }
    } catch (error) {
      showError(this.status, error);
    }
  }
}
