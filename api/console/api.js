// The HTTP client of the console: the public API only, with the key of this tab.
// The key lives in sessionStorage (this tab, until it closes) and goes out as a bearer header.

const KEY = "stonetown.key";
const TENANT = "stonetown.tenant";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** The message of an error body: Permify's `{code, message, details}` or Strapi's envelope. */
function messageOf(status, body, fallback) {
  if (body && typeof body === "object") {
    if (body.error && typeof body.error === "object") {
      const details = body.error.details && body.error.details.errors;
      const listed = Array.isArray(details) ? details.map((e) => `${(e.path || []).join(".")}: ${e.message}`) : [];
      return [body.error.message, ...listed].filter(Boolean).join("; ");
    }
    if (typeof body.message === "string" && body.message) return body.message;
    const violations = (body.details || []).flatMap((d) => d.field_violations || []);
    if (violations.length) return violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  }
  return fallback || `HTTP ${status}`;
}

export class Api {
  constructor(storage = window.sessionStorage) {
    this.storage = storage;
    this.key = storage.getItem(KEY) || "";
    this.tenant = storage.getItem(TENANT) || "t1";
    this.listeners = new Set();
  }

  connect(tenant, key) {
    this.tenant = tenant;
    this.key = key;
    this.storage.setItem(TENANT, tenant);
    if (key) this.storage.setItem(KEY, key);
    else this.storage.removeItem(KEY);
  }

  /** Called with every ApiError (the page shows 401s in its banner). */
  onError(listener) {
    this.listeners.add(listener);
  }

  headers() {
    const headers = { "Content-Type": "application/json" };
    if (this.key) headers.Authorization = `Bearer ${this.key}`;
    return headers;
  }

  /** `/v1/tenants/{tenant}` + suffix. */
  t(suffix) {
    return `/v1/tenants/${encodeURIComponent(this.tenant)}${suffix}`;
  }

  async request(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: this.headers(),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (exc) {
      throw this.fail(new ApiError(0, `the server did not answer (${exc.message})`, null));
    }
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      throw this.fail(new ApiError(response.status, messageOf(response.status, parsed, text), parsed));
    }
    return parsed;
  }

  fail(error) {
    for (const listener of this.listeners) listener(error);
    return error;
  }

  post(path, body = {}) {
    return this.request("POST", path, body);
  }

  get(path) {
    return this.request("GET", path);
  }

  put(path, body) {
    return this.request("PUT", path, body);
  }

  /** A newline-delimited JSON stream: `onLine` gets each object; resolves when it ends. */
  async stream(path, body, onLine, signal, onOpen) {
    let response;
    try {
      response = await fetch(path, { method: "POST", headers: this.headers(), body: JSON.stringify(body), signal });
    } catch (exc) {
      if (exc.name === "AbortError") return;
      throw this.fail(new ApiError(0, `the server did not answer (${exc.message})`, null));
    }
    if (!response.ok) {
      const text = await response.text();
      let parsed = null;
      try { parsed = JSON.parse(text); } catch { parsed = null; }
      throw this.fail(new ApiError(response.status, messageOf(response.status, parsed, text), parsed));
    }
    if (onOpen) onOpen();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line) onLine(JSON.parse(line));
        }
      }
    } catch (exc) {
      if (exc.name !== "AbortError") throw exc;
    }
  }
}
