// The schema editor: the text with a line gutter and error marks drawn under it, diagnostics
// from the server's own validator (POST /v1/schemas/validate) as you type, saving, and the
// version picker. The model graph is redrawn from each version's compiled schema.

import { debounce, h, showError, showOk } from "./dom.js";
import { renderGraph } from "./graph.js";

const VALIDATE_DELAY_MS = 250;

export class SchemaEditor {
  constructor(api, root) {
    this.api = api;
    this.text = root.querySelector("#schema-text");
    this.gutter = root.querySelector("#gutter");
    this.marks = root.querySelector("#marks");
    this.list = root.querySelector("#diagnostics");
    this.status = root.querySelector("#schema-status");
    this.versions = root.querySelector("#versions");
    this.graph = root.querySelector("#graph");
    this.graphText = root.querySelector("#graph-text");
    this.graphVersion = root.querySelector("#graph-version");
    this.diagnostics = [];
    this.asked = 0; // validations sent; only the latest one's answer is shown
    this.validateSoon = debounce(() => this.validate(), VALIDATE_DELAY_MS);
    this.text.addEventListener("input", () => {
      this.draw();
      this.validateSoon();
    });
    this.text.addEventListener("scroll", () => this.syncScroll());
    root.querySelector("#save").addEventListener("click", () => this.save());
    this.versions.addEventListener("change", () => this.open(this.versions.value));
    this.draw();
  }

  syncScroll() {
    this.marks.scrollTop = this.text.scrollTop;
    this.marks.scrollLeft = this.text.scrollLeft;
    this.gutter.scrollTop = this.text.scrollTop;
  }

  /** The gutter and the marks for the current text and diagnostics. */
  draw() {
    const lines = this.text.value.split("\n");
    const byLine = new Map();
    for (const d of this.diagnostics) {
      if (!byLine.has(d.line)) byLine.set(d.line, []);
      byLine.get(d.line).push(d);
    }
    this.gutter.replaceChildren(
      ...lines.map((_, i) => {
        const found = byLine.get(i + 1);
        return h(
          "div",
          { class: found ? "line error" : "line", dataset: { line: i + 1 }, title: found ? found.map((d) => d.message).join("\n") : null },
          String(i + 1),
        );
      }),
    );
    this.marks.replaceChildren(...lines.map((line, i) => this.markLine(line, byLine.get(i + 1) || [], i + 1)), "\n");
    this.syncScroll();
  }

  /** One line of the marks layer: its text, each diagnostic's word wrapped in a mark. */
  markLine(line, found, number) {
    const parts = [];
    let at = 0; // 0-based index into the line
    const chars = Array.from(line); // columns count characters (code points), as the server does
    for (const d of [...found].sort((a, b) => a.column - b.column)) {
      const start = Math.min(Math.max(d.column - 1, at), chars.length);
      let end = start;
      while (end < chars.length && /[\w@.#]/.test(chars[end])) end += 1;
      if (end === start) end = Math.min(start + 1, chars.length);
      parts.push(chars.slice(at, start).join(""));
      parts.push(
        h("mark", { class: "marker", dataset: { line: number, column: d.column }, title: d.message },
          chars.slice(start, end).join("") || " "),
      );
      at = end;
    }
    parts.push(chars.slice(at).join(""));
    return h("span", { class: "mark-line" }, ...parts, "\n");
  }

  async validate() {
    const asked = ++this.asked;
    const schema = this.text.value;
    try {
      const answer = await this.api.post("/v1/schemas/validate", { schema });
      if (asked !== this.asked) return;
      this.show(answer.diagnostics);
    } catch (error) {
      if (asked === this.asked) showError(this.status, error);
    }
  }

  show(diagnostics) {
    this.diagnostics = diagnostics;
    this.draw();
    this.list.replaceChildren(
      ...diagnostics.map((d) =>
        h("li", {},
          h("button", { type: "button", class: "goto", onclick: () => this.goTo(d) }, `${d.line}:${d.column}`),
          " ", d.message),
      ),
    );
    if (diagnostics.length) {
      this.status.classList.add("error");
      this.status.classList.remove("ok");
      this.status.textContent = `${diagnostics.length} problem${diagnostics.length === 1 ? "" : "s"}`;
    } else {
      showOk(this.status, "valid");
    }
  }

  /** Puts the caret at a diagnostic's line:column. */
  goTo(d) {
    const lines = this.text.value.split("\n");
    let offset = 0;
    for (let i = 0; i < d.line - 1 && i < lines.length; i += 1) offset += lines[i].length + 1;
    const line = lines[d.line - 1] || "";
    offset += Array.from(line).slice(0, d.column - 1).join("").length;
    this.text.focus();
    this.text.setSelectionRange(offset, offset);
  }

  /** The versions list and the head's text and graph. */
  async load() {
    await this.listVersions();
    await this.open(this.versions.value);
  }

  async listVersions(selected) {
    const tenant = this.api.tenant;
    const page = await this.api.post(this.api.t("/schemas/list"), { page_size: 100 });
    if (tenant !== this.api.tenant) return; // connected elsewhere meanwhile
    this.versions.replaceChildren(
      ...(page.schemas.length ? [] : [h("option", { value: "" }, "(no schema yet)")]),
      ...page.schemas.map((s) =>
        h("option", { value: s.version },
          `${s.version}${s.version === page.head ? " (head)" : ""} \u2014 ${s.created_at.replace("T", " ").slice(0, 19)}`),
      ),
    );
    this.versions.value = selected || page.head || "";
  }

  /** Shows a version (the head when `version` is empty): its text, and its graph. */
  async open(version) {
    if (!version) {
      this.text.value = "";
      this.show([]);
      renderGraph(this.graph, this.graphText, null);
      return;
    }
    const tenant = this.api.tenant;
    const read = await this.api.post(this.api.t("/schemas/read"), { metadata: { schema_version: version } });
    if (tenant !== this.api.tenant) return; // connected elsewhere meanwhile
    this.text.value = read.x_schema_text;
    this.show([]);
    this.graphVersion.textContent = `(version ${version})`;
    renderGraph(this.graph, this.graphText, read.schema);
  }

  async save() {
    try {
      const written = await this.api.post(this.api.t("/schemas/write"), { schema: this.text.value });
      await this.listVersions(written.schema_version);
      await this.open(written.schema_version);
      showOk(this.status, `saved as version ${written.schema_version}`);
    } catch (error) {
      showError(this.status, error);
      this.validate();
    }
  }
}
