// The data browser: read relationships a page at a time at one snapshot, write and delete
// tuples; read, write and delete attributes.

import { h, list, onSubmit, parseEntity, parseTuple, showError, showOk, subjectText } from "./dom.js";

const VALUE_URL = "type.googleapis.com/base.v1.";

/** A read filter from the form's fields; blank fields match anything. */
function tupleFilter(v) {
  return {
    entity: { type: v.entity_type || "", ids: list(v.entity_ids) },
    relation: v.relation || "",
    subject: { type: v.subject_type || "", ids: list(v.subject_ids), relation: v.subject_relation || "" },
  };
}

/** The filter that names exactly one tuple: a plain subject's relation is "..." (plain subjects
 * only), since "" would match `group:eng#member` as well as `group:eng`. */
function exactFilter(t) {
  return {
    entity: { type: t.entity.type, ids: [t.entity.id] },
    relation: t.relation,
    subject: { type: t.subject.type, ids: [t.subject.id], relation: t.subject.relation || "..." },
  };
}

export class DataBrowser {
  constructor(api, root, state) {
    this.api = api;
    this.state = state;
    this.readForm = root.querySelector("#read-form");
    this.readStatus = root.querySelector("#read-status");
    this.rows = root.querySelector("#tuples tbody");
    this.next = root.querySelector("#next-page");
    this.writeStatus = root.querySelector("#write-status");
    this.attrRows = root.querySelector("#attributes tbody");
    this.attrStatus = root.querySelector("#attr-status");
    this.page = null; // {request, continuous_token, snap_token, number}
    onSubmit(this.readForm, this.readStatus, (v) => this.read(v));
    this.next.addEventListener("click", () => this.nextPage().catch((e) => showError(this.readStatus, e)));
    onSubmit(root.querySelector("#write-form"), this.writeStatus, (v) => this.write(v));
    this.attrForm = root.querySelector("#attr-read-form");
    onSubmit(this.attrForm, this.attrStatus, (v) => this.readAttributes(v));
    onSubmit(root.querySelector("#attr-write-form"), this.attrStatus, (v) => this.writeAttribute(v));
  }

  async read(v) {
    const request = {
      filter: tupleFilter(v),
      page_size: Number(v.page_size) || 20,
      metadata: { snap_token: (v.snap_token || "").trim() },
    };
    await this.fetchPage(request, "", 1);
  }

  async fetchPage(request, token, number) {
    const answer = await this.api.post(this.api.t("/data/relationships/read"), { ...request, continuous_token: token });
    // Later pages are read at the snapshot of the first, so a write in between cannot shift them.
    this.page = {
      request: { ...request, metadata: { snap_token: answer.x_snap_token } },
      token: answer.continuous_token,
      number,
    };
    this.rows.replaceChildren(...answer.tuples.map((t) => this.row(t)));
    this.next.disabled = !answer.continuous_token;
    const more = answer.continuous_token ? "; more on the next page" : "";
    showOk(this.readStatus, `page ${number}: ${answer.tuples.length} tuple${answer.tuples.length === 1 ? "" : "s"} at snap token ${answer.x_snap_token}${more}`);
  }

  async nextPage() {
    if (this.page && this.page.token) await this.fetchPage(this.page.request, this.page.token, this.page.number + 1);
  }

  row(t) {
    const text = `${t.entity.type}:${t.entity.id}#${t.relation}@${subjectText(t.subject)}`;
    return h("tr", { dataset: { tuple: text } },
      h("td", {}, `${t.entity.type}:${t.entity.id}`),
      h("td", {}, t.relation),
      h("td", {}, subjectText(t.subject)),
      h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete ${text}`, onclick: () => this.remove(t) }, "Delete")));
  }

  async remove(t) {
    try {
      const answer = await this.api.post(this.api.t("/relationships/delete"), { filter: exactFilter(t) });
      this.state.wrote(answer.snap_token);
      showOk(this.writeStatus, `deleted; snap token ${answer.snap_token}`);
      this.readForm.requestSubmit();
    } catch (error) {
      showError(this.writeStatus, error);
    }
  }

  async write(v) {
    const tuples = v.tuples.split(/[,\n]/).map((s) => s.trim()).filter(Boolean).map(parseTuple);
    const answer = await this.api.post(this.api.t("/data/write"), { tuples });
    this.state.wrote(answer.snap_token);
    showOk(this.writeStatus, `wrote ${tuples.length} tuple${tuples.length === 1 ? "" : "s"}; snap token ${answer.snap_token}`);
    this.readForm.elements.snap_token.value = "";
    this.readForm.requestSubmit();
  }

  async readAttributes(v) {
    const answer = await this.api.post(this.api.t("/data/attributes/read"), {
      filter: { entity: { type: v.entity_type || "", ids: list(v.entity_ids) }, attributes: list(v.attributes) },
      page_size: 100,
    });
    this.attrRows.replaceChildren(...answer.attributes.map((a) => h("tr", { dataset: { attribute: `${a.entity.type}:${a.entity.id}$${a.attribute}` } },
      h("td", {}, `${a.entity.type}:${a.entity.id}`),
      h("td", {}, a.attribute),
      h("td", {}, JSON.stringify(a.value.data)),
      h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete ${a.entity.type}:${a.entity.id} ${a.attribute}`, onclick: () => this.removeAttribute(a) }, "Delete")))));
    showOk(this.attrStatus, `${answer.attributes.length} attribute${answer.attributes.length === 1 ? "" : "s"}${answer.continuous_token ? " (first 100)" : ""}`);
  }

  async writeAttribute(v) {
    let data;
    try {
      data = JSON.parse(v.value);
    } catch {
      data = v.value; // a bare word is a string
    }
    const attribute = { entity: parseEntity(v.entity), attribute: v.attribute.trim(), value: { "@type": VALUE_URL + v.kind, data } };
    const answer = await this.api.post(this.api.t("/data/write"), { attributes: [attribute] });
    this.state.wrote(answer.snap_token);
    showOk(this.attrStatus, `wrote ${v.entity}$${attribute.attribute}; snap token ${answer.snap_token}`);
    this.attrForm.requestSubmit();
  }

  async removeAttribute(a) {
    try {
      const answer = await this.api.post(this.api.t("/data/delete"), {
        attribute_filter: { entity: { type: a.entity.type, ids: [a.entity.id] }, attributes: [a.attribute] },
      });
      this.state.wrote(answer.snap_token);
      showOk(this.attrStatus, `deleted; snap token ${answer.snap_token}`);
      this.attrForm.requestSubmit();
    } catch (error) {
      showError(this.attrStatus, error);
    }
  }
}
