// The console page: the connection (tenant and key, kept for this tab only), the tabs, and
// each section's controller. Every call goes through the public HTTP API (api.js).

import { Api } from "./api.js";
import { CheckPanel } from "./check.js";
import { DataBrowser } from "./data.js";
import { RelationsPanel } from "./relations.js";
import { SchemaEditor } from "./schema.js";
import { WatchFeed } from "./watch.js";
import { h, showError } from "./dom.js";

const api = new Api();
const $ = (selector) => document.querySelector(selector);
const banner = $("#banner");
const connection = $("#connection");

/** What the sections share: the snap token of the last write made from this page. */
const state = {
  lastToken: "",
  wrote(token) {
    this.lastToken = token;
    connection.textContent = `connected to ${api.tenant}; last write: ${token}`;
  },
};

api.onError((error) => {
  if (error.status === 401) {
    banner.hidden = false;
    banner.replaceChildren(h("strong", {}, "401 Unauthorized: "), error.message,
      ". This server needs a key: enter it above and connect.");
  }
});

// -- tabs: arrow keys move between them, as the ARIA tabs pattern says -----------------------
const tabs = Array.from(document.querySelectorAll("[role=tab]"));
let watchUnseen = 0;
const watchCount = $("#watch-count");

function select(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (tab.id === "tab-watch") {
    watchUnseen = 0;
    watchCount.hidden = true;
  }
}
for (const [i, tab] of tabs.entries()) {
  tab.addEventListener("click", () => select(tab));
  tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step === undefined) return;
    const next = tabs[(i + step + tabs.length) % tabs.length];
    select(next);
    next.focus();
  });
}

const schema = new SchemaEditor(api, $("#panel-schema"));
new DataBrowser(api, $("#panel-data"), state);
new CheckPanel(api, $("#panel-check"), state);
new RelationsPanel(api, $("#panel-relations"), state);
const watch = new WatchFeed(api, $("#panel-watch"), () => {
  if ($("#tab-watch").getAttribute("aria-selected") !== "true") {
    watchUnseen += 1;
    watchCount.hidden = false;
    watchCount.textContent = String(watchUnseen);
  }
});

// -- connecting ----------------------------------------------------------------------------
const form = $("#connect");
form.elements.tenant.value = api.tenant;
form.elements.key.value = api.key;

let connects = 0; // a later connect wins over one still under way

async function connect() {
  const attempt = ++connects;
  banner.hidden = true;
  delete document.body.dataset.connected;
  watch.stop();
  connection.classList.remove("error");
  connection.textContent = "connecting\u2026";
  try {
    const tenants = await api.post("/v1/tenants/list", { page_size: 100 });
    if (attempt !== connects) return;
    $("#tenants").replaceChildren(...tenants.tenants.map((t) => h("option", { value: t.id }, t.name || t.id)));
    await schema.load();
    if (attempt !== connects) return;
    connection.textContent = `connected to ${api.tenant}`;
    document.body.dataset.connected = api.tenant;
  } catch (error) {
    showError(connection, error);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  api.connect(form.elements.tenant.value.trim(), form.elements.key.value.trim());
  connect();
});
connect();
