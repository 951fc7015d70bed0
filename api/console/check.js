// Check and explain: the server's answer to "can S do P on E" at a snapshot, and its expand
// tree with the path that allowed it (or what denied it) marked; lookups.

import { h, onSubmit, parseEntity, parseSubject, showError, showOk, subjectText } from "./dom.js";

const ALLOWED = "CHECK_RESULT_ALLOWED";
const OPERATIONS = { OPERATION_UNION: "any of", OPERATION_INTERSECTION: "all of", OPERATION_EXCLUSION: "but not" };

/** Whether a leaf's subjects hold `subject` (`type:*` holds every id of its type). */
function holds(subjects, subject) {
  return subjects.some((s) => s.type === subject.type && (s.id === subject.id || s.id === "*")
    && (s.relation || "") === (subject.relation || ""));
}

/** Evaluates the expand tree for `subject`, three-valued (true, false, null = cannot tell from
 * the tree: attributes and rules), recording each node's value in `values`. */
export function evaluate(node, subject, values) {
  let value = null;
  if (node.leaf) {
    if (node.leaf.subjects) value = holds(node.leaf.subjects.subjects, subject);
    else if (node.leaf.value && typeof node.leaf.value.data === "boolean") value = node.leaf.value.data;
  } else {
    const children = node.expand.children.map((c) => evaluate(c, subject, values));
    const op = node.expand.operation;
    if (op === "OPERATION_UNION") {
      value = children.includes(true) ? true : children.includes(null) ? null : false;
    } else if (op === "OPERATION_INTERSECTION") {
      value = children.includes(false) ? false : children.includes(null) ? null : true;
    } else if (op === "OPERATION_EXCLUSION") {
      const [base, ...rest] = children;
      if (base === false || rest.includes(true)) value = false;
      else if (base === true && rest.every((v) => v === false)) value = true;
    }
  }
  values.set(node, value);
  return value;
}

/** The nodes on the path that decided the answer: for an allowed answer, one allowing child of
 * each union and every child of the others; for a denied one, what denied each level. */
export function decidingPath(node, values, allowed, path = new Set()) {
  path.add(node);
  if (!node.expand) return path;
  const children = node.expand.children;
  const op = node.expand.operation;
  const want = (c, v) => values.get(c) === v;
  let next = [];
  if (allowed) {
    if (op === "OPERATION_UNION") next = children.filter((c) => want(c, true)).slice(0, 1);
    else next = children; // intersection: all allowed; exclusion: the base, and the exclusions that did not apply
  } else if (op === "OPERATION_UNION") {
    next = children; // every branch failed
  } else if (op === "OPERATION_INTERSECTION") {
    next = children.filter((c) => want(c, false)).slice(0, 1);
  } else if (op === "OPERATION_EXCLUSION") {
    next = want(children[0], false) ? [children[0]] : children.slice(1).filter((c) => want(c, true)).slice(0, 1);
  }
  for (const c of next) decidingPath(c, values, allowed, path);
  return path;
}

function nodeLabel(node) {
  const where = `${node.entity.type}:${node.entity.id} ${node.permission}`;
  if (node.expand) return [h("span", { class: "where" }, where), " ", h("span", { class: "op" }, OPERATIONS[node.expand.operation] || node.expand.operation)];
  const leaf = node.leaf;
  if (leaf.subjects) {
    const subjects = leaf.subjects.subjects.map(subjectText);
    return [h("span", { class: "where" }, where), " \u2190 ", subjects.length ? subjects.join(", ") : h("em", {}, "nobody")];
  }
  if (leaf.value) return [h("span", { class: "where" }, where), ` = ${JSON.stringify(leaf.value.data)}`];
  if (leaf.values) return [h("span", { class: "where" }, where), " (rule)"];
  return [h("span", { class: "where" }, where)];
}

function renderTree(node, values, path, allowed) {
  const value = values.get(node);
  const onPath = path.has(node);
  const mark = value === true ? "\u2713" : value === false ? "\u2717" : "?";
  const classes = ["node", value === true ? "yes" : value === false ? "no" : "unknown"];
  if (onPath) classes.push(allowed ? "path" : "denied-path");
  const say = value === true ? "holds" : value === false ? "does not hold" : "not decided by the tree";
  const item = h("li", { class: classes.join(" "), role: "treeitem", "aria-expanded": node.expand ? "true" : null,
    "aria-label": `${node.entity.type}:${node.entity.id} ${node.permission}: ${say}${onPath ? (allowed ? ", on the allowing path" : ", why denied") : ""}` },
  h("span", { class: "mark", "aria-hidden": "true" }, mark), " ", ...nodeLabel(node));
  if (node.expand) {
    item.append(h("ul", { role: "group" }, ...node.expand.children.map((c) => renderTree(c, values, path, allowed))));
  }
  return item;
}

export class CheckPanel {
  constructor(api, root, state) {
    this.api = api;
    this.state = state;
    this.result = root.querySelector("#check-result");
    this.explain = root.querySelector("#explain");
    this.form = root.querySelector("#check-form");
    onSubmit(this.form, this.result, (v) => this.check(v));
    const entities = root.querySelector("#lookup-entity-results");
    onSubmit(root.querySelector("#lookup-entity-form"), entities, (v) => this.lookupEntity(v, entities));
    const subjects = root.querySelector("#lookup-subject-results");
    onSubmit(root.querySelector("#lookup-subject-form"), subjects, (v) => this.lookupSubject(v, subjects));
  }

  async check(v) {
    this.explain.replaceChildren();
    const entity = parseEntity(v.entity);
    const subject = parseSubject(v.subject);
    const permission = v.permission.trim();
    const metadata = { snap_token: (v.snap_token || "").trim() };
    const [answer, expanded] = await Promise.allSettled([
      this.api.post(this.api.t("/permissions/check"), { metadata, entity, permission, subject }),
      this.api.post(this.api.t("/permissions/expand"), { metadata, entity, permission }),
    ]).then(([checked, tree]) => {
      if (checked.status === "rejected") throw checked.reason;
      return [checked.value, tree];
    });
    this.show(entity, permission, subject, metadata, answer, expanded);
  }

  /** The answer, then its explanation (or why there is none: the expand failed). */
  show(entity, permission, subject, metadata, answer, expanded) {
    const allowed = answer.can === ALLOWED;
    this.result.className = `result ${allowed ? "allowed" : "denied"}`;
    this.result.replaceChildren(
      h("strong", { class: "verdict" }, allowed ? "ALLOWED" : "DENIED"),
      ` \u2014 ${subjectText(subject)} ${allowed ? "may" : "may not"} ${permission} ${entity.type}:${entity.id}`,
      metadata.snap_token ? ` at snap token ${metadata.snap_token}` : " at the latest snapshot");
    if (expanded.status === "rejected") {
      const error = expanded.reason;
      this.explain.replaceChildren(h("p", { class: "error" },
        `No explanation: the expand failed (${error.status ? `HTTP ${error.status}: ` : ""}${error.message})`));
      return;
    }
    const tree = expanded.value.tree;
    const values = new Map();
    evaluate(tree, subject, values);
    const path = decidingPath(tree, values, allowed);
    this.explain.replaceChildren(
      h("h3", { class: "small" }, allowed ? "Why: the highlighted path allowed it" : "Why not: the highlighted nodes denied it"),
      h("ul", { role: "tree", class: "tree", "aria-label": "Expand tree" }, renderTree(tree, values, path, allowed)),
    );
  }

  async lookupEntity(v, target) {
    const answer = await this.api.post(this.api.t("/permissions/lookup-entity"), {
      entity_type: v.entity_type.trim(), permission: v.permission.trim(), subject: parseSubject(v.subject), page_size: 100,
    });
    this.showIds(target, answer.entity_ids.map((id) => `${v.entity_type.trim()}:${id}`), answer.continuous_token);
  }

  async lookupSubject(v, target) {
    const [type, relation = ""] = v.subject_type.trim().split("#");
    const answer = await this.api.post(this.api.t("/permissions/lookup-subject"), {
      entity: parseEntity(v.entity), permission: v.permission.trim(), subject_reference: { type, relation }, page_size: 100,
    });
    this.showIds(target, answer.subject_ids.map((id) => `${type}:${id}${relation ? `#${relation}` : ""}`), answer.continuous_token);
  }

  showIds(target, ids, more) {
    target.classList.remove("error");
    target.replaceChildren(...(ids.length ? ids.map((id) => h("li", {}, id)) : [h("li", { class: "muted" }, "none")]),
      ...(more ? [h("li", { class: "muted" }, "\u2026 (first 100)")] : []));
  }
}
