// The watch feed: the tenant's changes as they happen (POST .../watch, newline-delimited JSON),
// newest first.

import { h, showError, subjectText } from "./dom.js";

const SHOWN = 200;

export class WatchFeed {
  constructor(api, root, onEvent) {
    this.api = api;
    this.onEvent = onEvent;
    this.toggle = root.querySelector("#watch-toggle");
    this.status = root.querySelector("#watch-status");
    this.feed = root.querySelector("#watch-feed");
    this.controller = null;
    this.toggle.addEventListener("click", () => (this.controller ? this.stop() : this.start()));
    root.querySelector("#watch-clear").addEventListener("click", () => this.feed.replaceChildren());
  }

  setStatus(text, live) {
    this.status.classList.remove("error");
    this.status.textContent = text;
    this.toggle.textContent = live ? "Stop watching" : "Start watching";
    this.toggle.setAttribute("aria-pressed", live ? "true" : "false");
  }

  async start() {
    const controller = new AbortController();
    this.controller = controller;
    const tenant = this.api.tenant;
    this.setStatus("connecting\u2026", true);
    try {
      await this.api.stream(this.api.t("/watch"), { snap_token: "" }, (line) => this.line(line), controller.signal,
        () => this.setStatus(`live: changes to tenant ${tenant} appear as they are written`, true));
      if (this.controller === controller) this.setStatus("the server ended the stream", false);
    } catch (error) {
      if (this.controller === controller) {
        this.setStatus("", false);
        showError(this.status, error);
      }
    }
    if (this.controller === controller) this.controller = null;
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
    this.setStatus("stopped", false);
  }

  line(line) {
    if (line.error) {
      showError(this.status, { status: 0, message: line.error.message || "the stream failed" });
      return;
    }
    const changes = line.result.changes;
    const items = changes.data_changes.map((c) => {
      const op = c.operation === "OPERATION_DELETE" ? "delete" : "create";
      const what = c.tuple
        ? `${c.tuple.entity.type}:${c.tuple.entity.id}#${c.tuple.relation}@${subjectText(c.tuple.subject)}`
        : `${c.attribute.entity.type}:${c.attribute.entity.id}$${c.attribute.attribute} = ${JSON.stringify(c.attribute.value.data)}`;
      return h("li", { class: op }, h("span", { class: "op" }, op), " ", h("code", {}, what));
    });
    this.feed.prepend(h("li", { class: "event", dataset: { snapToken: changes.snap_token } },
      h("div", { class: "when" }, `${new Date().toLocaleTimeString()} \u2014 snap token ${changes.snap_token}`),
      h("ul", {}, ...items)));
    while (this.feed.children.length > SHOWN) this.feed.lastElementChild.remove();
    this.onEvent();
  }
}
