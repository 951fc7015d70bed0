// Small helpers: building elements (text is always set as text, never parsed as HTML) and
// reading the `type:id#relation` forms the console's inputs take.

/** `h("li", {class: "x"}, "text", child)`: an element with attributes and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return element;
}

export class InputError extends Error {}

/** `doc:1` -> {type, id}. */
export function parseEntity(text) {
  const match = /^\s*([^:#@\s]+):([^#@\s]+)\s*$/.exec(text);
  if (!match) throw new InputError(`"${text}" is not an entity: write type:id, e.g. doc:1`);
  return { type: match[1], id: match[2] };
}

/** `user:ann` or `group:eng#member` -> {type, id, relation}. */
export function parseSubject(text) {
  const match = /^\s*([^:#@\s]+):([^#@\s]+)(?:#([^#@\s]+))?\s*$/.exec(text);
  if (!match) throw new InputError(`"${text}" is not a subject: write type:id or type:id#relation`);
  return { type: match[1], id: match[2], relation: match[3] || "" };
}

/** `doc:1#viewer@user:ann` -> a tuple in the API's shape. */
export function parseTuple(text) {
  const at = text.indexOf("@");
  const hash = text.lastIndexOf("#", at);
  if (at < 0 || hash < 0) throw new InputError(`"${text.trim()}" is not a tuple: write type:id#relation@type:id`);
  return {
    entity: parseEntity(text.slice(0, hash)),
    relation: text.slice(hash + 1, at).trim(),
    subject: parseSubject(text.slice(at + 1)),
  };
}

export function subjectText(s) {
  return `${s.type}:${s.id}${s.relation ? `#${s.relation}` : ""}`;
}

export function tupleText(t) {
  return `${t.entity.type}:${t.entity.id}#${t.relation}@${subjectText(t.subject)}`;
}

/** Comma- or space-separated values, blanks dropped. */
export function list(text) {
  return String(text || "").split(/[\s,]+/).filter(Boolean);
}

/** Shows an error (an ApiError's status and message, or an input error) in `target`. */
export function showError(target, error) {
  target.classList.add("error");
  target.classList.remove("ok");
  const status = error.status ? `HTTP ${error.status}: ` : "";
  target.textContent = `${status}${error.message}`;
}

export function showOk(target, text) {
  target.classList.remove("error");
  target.classList.add("ok");
  target.textContent = text;
}

/** `fn(...)` on submit of `form`, with its values; errors land in `status`. */
export function onSubmit(form, status, fn) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form).entries());
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      await fn(values);
    } catch (error) {
      showError(status, error);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
