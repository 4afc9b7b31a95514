// The document explorer: reads the JSON API (/v1) and follows its event
// stream (/v1/events). Everything a document holds is set as text
// (textContent, properties), never parsed as markup.
"use strict";

(() => {
  const TOKEN_KEY = "reactor.explorer.token";
  const POLL_MS = 3000; // how often the page looks for changes without a stream
  const REFRESH_DEBOUNCE_MS = 150; // events arriving together cause one re-read
  const RECONNECT_MS = 3000; // wait before reopening a stream that ended
  const DOCUMENTS_PAGE = 50;
  const OPERATIONS_PAGE = 25;
  const CHILDREN_PAGE = 50;

  const $ = (id) => document.getElementById(id);

  const view = {
    type: "",
    parent: "",
    filter: "",
    documentsCursor: null,
    docId: null,
    header: null,
    opsScope: "",
    opsCursor: null,
    childrenCursor: null,
    generation: 0, // a re-read started for an earlier view is dropped
    listGeneration: 0, // likewise for the list of documents
  };
  const live = {
    stream: null,
    pollTimer: null,
    refreshTimer: null,
    retryTimer: null,
    reading: false,
    readAgain: false,
    changed: new Set(), // documents changed since the last re-read
  };
  const ANY = Symbol("any document");

  // ---- DOM -------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "data") Object.assign(node.dataset, value);
      else if (key === "title" || key === "href") node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function docLink(id) {
    return el("a", { href: "#/doc/" + encodeURIComponent(id), class: "doc-link" }, id);
  }

  function say(message, kind) {
    const status = $("status");
    status.textContent = message || "";
    status.className = kind || "";
    status.hidden = !message;
  }

  function setLive(text, kind) {
    const badge = $("live");
    badge.textContent = text;
    badge.className = "badge " + (kind || "");
  }

  // ---- API -------------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function url(path, params) {
    const target = new URL(path, location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") target.searchParams.set(key, value);
    }
    return target;
  }

  async function api(path, params) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const answer = await fetch(url(path, params), { headers, cache: "no-store" });
    const body = await answer.json().catch(() => null);
    if (!answer.ok) {
      const detail = body && body.error ? body.error.message : answer.statusText;
      const error = new Error(answer.status + ": " + detail);
      error.status = answer.status;
      throw error;
    }
    return body;
  }

  function docPath(id, tail) {
    return "/v1/documents/" + encodeURIComponent(id) + (tail || "");
  }

  function failed(error) {
    if (error.status === 401) {
      say("The API needs a bearer token: paste one above. (" + error.message + ")", "error");
      $("token").focus();
    } else {
      say(error.message, "error");
    }
  }

  // ---- documents by type ----------------------------------------------

  async function loadTypes() {
    const select = $("type");
    try {
      const body = await api("/v1/types");
      select.replaceChildren(el("option", { value: "" }, "all types"));
      for (const name of body.types) select.append(el("option", { value: name }, name));
      select.value = view.type;
    } catch (error) {
      failed(error);
    }
  }

  function matches(doc) {
    const needle = view.filter.trim().toLowerCase();
    if (!needle) return true;
    const h = doc.header;
    return [h.id, h.slug || "", h.name || ""].some((v) => v.toLowerCase().includes(needle));
  }

  function documentItem(doc) {
    const h = doc.header;
    const item = el(
      "li",
      { data: { id: h.id }, class: h.id === view.docId ? "current" : "" },
      docLink(h.id),
      el("span", { class: "type" }, h.document_type),
    );
    if (h.name || h.slug) item.append(el("span", { class: "name" }, h.name || h.slug));
    if (h.deleted) item.append(el("span", { class: "deleted" }, "deleted"));
    item.hidden = !matches(doc);
    item.doc = doc;
    return item;
  }

  async function loadDocuments(more) {
    const generation = ++view.listGeneration;
    try {
      const body = await api("/v1/documents", {
        type: view.type,
        parent: view.parent,
        limit: DOCUMENTS_PAGE,
        cursor: more ? view.documentsCursor : null,
      });
      if (generation !== view.listGeneration) return;
      const list = $("documents");
      const items = body.results.map(documentItem);
      if (more) list.append(...items);
      else list.replaceChildren(...items);
      if (!list.children.length) list.append(el("li", { class: "none" }, "no documents"));
      view.documentsCursor = body.next_cursor;
      $("documents-more").hidden = !body.next_cursor;
    } catch (error) {
      failed(error);
    }
  }

  function applyFilter() {
    for (const item of $("documents").children) {
      if (item.doc) item.hidden = !matches(item.doc);
    }
  }

  // ---- one document ----------------------------------------------------

  function headerRows(h) {
    const revision = Object.entries(h.revision || {})
      .map(([scope, n]) => scope + ": " + n)
      .join(", ");
    const rows = [
      ["id", h.id],
      ["slug", h.slug || "—"],
      ["name", h.name || "—"],
      ["type", h.document_type],
      ["branch", h.branch],
      ["revision", revision || "—"],
      ["created", h.created_at],
      ["last modified", h.last_modified_at],
      ["deleted", h.deleted ? "yes" : "no"],
    ];
    return rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { data: { field: k } }, v)));
  }

  function renderDocument(doc) {
    const h = doc.header;
    view.header = h;
    $("doc-title").textContent = h.name || h.slug || h.id;
    $("doc-header").replaceChildren(...headerRows(h));
    const scopes = Object.keys(doc.state || {});
    $("doc-state").replaceChildren(
      ...scopes.map((scope) =>
        el(
          "div",
          { class: "scope" },
          el("h4", {}, scope),
          el("pre", { id: "state-" + scope }, JSON.stringify(doc.state[scope], null, 2)),
        ),
      ),
    );
    const select = $("ops-scope");
    const known = new Set([...scopes, ...Object.keys(h.revision || {})]);
    select.replaceChildren(
      el("option", { value: "" }, "all scopes"),
      ...[...known].sort().map((s) => el("option", { value: s }, s)),
    );
    select.value = known.has(view.opsScope) ? view.opsScope : "";
    for (const item of $("documents").children) {
      item.classList.toggle("current", item.dataset.id === h.id);
    }
  }

  function operationRow(op) {
    const context = op.action && op.action.context;
    const by = context && context.sub !== undefined && context.sub !== null ? String(context.sub) : "—";
    return el(
      "tr",
      { data: { index: String(op.index), scope: op.scope } },
      el("td", { class: "num" }, String(op.index)),
      el("td", {}, op.scope),
      el("td", { class: "op-type" }, op.action ? op.action.type : ""),
      el("td", { class: "num" }, String(op.skip)),
      el("td", { class: "by" }, by),
      el("td", {}, el("code", { class: "hash", title: op.hash }, op.hash)),
      el("td", { class: "at" }, op.timestamp),
    );
  }

  function opKey(scope, index) {
    return scope + "/" + index;
  }

  function fetchOperations(mode) {
    return api(docPath(view.docId, "/operations"), {
      scope: view.opsScope,
      newest_first: "true",
      limit: OPERATIONS_PAGE,
      cursor: mode === "older" ? view.opsCursor : null,
    });
  }

  // "first": the newest page; "older": the page after the oldest shown;
  // "changed": the newest page put on top of what is shown, so older pages
  // a reader opened stay open (operations never change once written).
  function showOperations(mode, body) {
    const table = $("ops-body");
    if (mode === "older") {
      table.append(...body.results.map(operationRow));
    } else {
      const shown = new Set([...table.children].map((r) => opKey(r.dataset.scope, r.dataset.index)));
      const fresh = [];
      for (const op of body.results) {
        if (shown.has(opKey(op.scope, op.index))) break;
        fresh.push(op);
      }
      const joins = mode === "changed" && shown.size > 0 && fresh.length < body.results.length;
      if (joins) {
        table.prepend(...fresh.map(operationRow));
        return;
      }
      table.replaceChildren(...body.results.map(operationRow));
    }
    view.opsCursor = body.next_cursor;
    $("ops-more").hidden = !body.next_cursor;
  }

  async function loadOperations(mode) {
    const id = view.docId;
    const scope = view.opsScope;
    const body = await fetchOperations(mode);
    if (id === view.docId && scope === view.opsScope) showOperations(mode, body);
  }

  function fetchChildren(more) {
    return api(docPath(view.docId, "/children"), {
      limit: CHILDREN_PAGE,
      cursor: more ? view.childrenCursor : null,
    });
  }

  function showChildren(more, body) {
    const items = body.results.map((child) => el("li", { data: { id: child } }, docLink(child)));
    const list = $("doc-children");
    if (more) list.append(...items);
    else list.replaceChildren(...items);
    if (!list.children.length) list.append(el("li", { class: "none" }, "none"));
    view.childrenCursor = body.next_cursor;
    $("children-more").hidden = !body.next_cursor;
  }

  async function loadChildren(more) {
    const id = view.docId;
    const body = await fetchChildren(more);
    if (id === view.docId) showChildren(more, body);
  }

  // One re-read at a time: two at once could both put the same new
  // operations on top of the log. A change during a re-read causes one more.
  async function loadDocument() {
    if (live.reading) {
      live.readAgain = true;
      return;
    }
    live.reading = true;
    try {
      do {
        live.readAgain = false;
        await readDocument();
      } while (live.readAgain);
    } finally {
      live.reading = false;
    }
  }

  async function readDocument() {
    if (!view.docId) return;
    const id = view.docId;
    const generation = view.generation;
    try {
      const doc = await api(docPath(id));
      if (generation !== view.generation) return;
      if (doc.header.id !== id) {
        // Opened by slug: the listings and the stream name documents by id.
        view.docId = doc.header.id;
        history.replaceState(null, "", "#/doc/" + encodeURIComponent(view.docId));
        watch();
      }
      const scope = view.opsScope;
      const [ops, children] = await Promise.all([fetchOperations("changed"), fetchChildren(false)]);
      if (generation !== view.generation || scope !== view.opsScope) return;
      // All at once: never a state beside a log that does not lead to it yet.
      renderDocument(doc);
      showOperations("changed", ops);
      showChildren(false, children);
      say("");
    } catch (error) {
      if (generation === view.generation) failed(error);
    }
  }

  // ---- live updates ----------------------------------------------------

  function stopWatching() {
    if (live.stream) live.stream.close();
    live.stream = null;
    clearInterval(live.pollTimer);
    clearTimeout(live.retryTimer);
    live.pollTimer = null;
  }

  // `documentId` undefined: anything may have changed.
  function refreshSoon(documentId) {
    live.changed.add(documentId === undefined ? ANY : documentId);
    clearTimeout(live.refreshTimer);
    live.refreshTimer = setTimeout(() => {
      const changed = live.changed;
      live.changed = new Set();
      const any = changed.has(ANY);
      if (view.docId && (any || changed.has(view.docId))) loadDocument();
      const listed = new Set([...$("documents").children].map((li) => li.dataset.id));
      const touched = any || [...changed].some((id) => !listed.has(id) || id === view.docId);
      if (!view.documentsCursor && touched) loadDocuments(false);
    }, REFRESH_DEBOUNCE_MS);
  }

  function poll(reason) {
    stopWatching();
    setLive("polling every " + POLL_MS / 1000 + " s", "polling");
    $("live").title = reason;
    live.pollTimer = setInterval(async () => {
      if (!view.docId) return refreshSoon(undefined);
      try {
        const doc = await api(docPath(view.docId));
        if (JSON.stringify(doc.header) !== JSON.stringify(view.header)) refreshSoon(view.docId);
      } catch {
        // the next tick tries again; errors show when the user acts
      }
    }, POLL_MS);
  }

  function onOperation(data) {
    let change = {};
    try {
      change = JSON.parse(data);
    } catch {
      // an event we cannot read still means something changed
    }
    refreshSoon(change.document_id);
  }

  function streaming(reason) {
    setLive("live", "live");
    $("live").title = reason;
  }

  // Without a token: EventSource, which reconnects (with Last-Event-ID) by itself.
  function follow(params) {
    const stream = new EventSource(url("/v1/events", params));
    live.stream = stream;
    stream.onopen = () => streaming("changes arrive over /v1/events");
    stream.addEventListener("operation", (event) => onOperation(event.data));
    // Fallen too far behind: the stream ends; whatever was missed is re-read.
    stream.addEventListener("overflow", () => refreshSoon(undefined));
    stream.onerror = () => {
      if (live.stream !== stream) return;
      if (stream.readyState === EventSource.CLOSED) poll("no event stream here: polling");
      else setLive("reconnecting…", "");
    };
  }

  // With a token: EventSource cannot send headers and the token stays out of
  // URLs, so the stream is read with fetch and parsed here (one event per
  // blank-line-separated block; only `event:` and `data:` matter).
  async function followWithHeader(params) {
    const controller = new AbortController();
    const stream = { close: () => controller.abort() };
    live.stream = stream;
    let answer;
    try {
      answer = await fetch(url("/v1/events", params), {
        headers: { Accept: "text/event-stream", Authorization: "Bearer " + token() },
        signal: controller.signal,
        cache: "no-store",
      });
    } catch {
      answer = null;
    }
    if (live.stream !== stream) return;
    if (answer && !answer.ok) return poll("the event stream answered " + answer.status + ": polling");
    if (answer && answer.body) {
      streaming("changes arrive over /v1/events (with the token)");
      const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch {
        // aborted or cut off: reconnect below unless this stream was replaced
      }
    }
    if (live.stream !== stream) return;
    setLive("reconnecting…", "");
    live.retryTimer = setTimeout(() => {
      if (live.stream !== stream) return;
      refreshSoon(undefined); // what changed while disconnected
      watch();
    }, RECONNECT_MS);
  }

  function dispatch(block) {
    let kind = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") kind = value;
      else if (field === "data") data.push(value);
    }
    if (kind === "operation") onOperation(data.join("\n"));
    else if (kind === "overflow") refreshSoon(undefined);
  }

  function watch() {
    stopWatching();
    setLive("connecting…", "");
    const params = view.docId ? { id: view.docId } : { type: view.type };
    if (token()) followWithHeader(params);
    else follow(params);
  }

  // ---- navigation ------------------------------------------------------

  function route() {
    const match = /^#\/doc\/(.+)$/.exec(location.hash);
    view.generation += 1;
    view.docId = match ? decodeURIComponent(match[1]) : null;
    view.opsCursor = null;
    view.childrenCursor = null;
    view.header = null;
    $("document").hidden = !view.docId;
    $("empty").hidden = Boolean(view.docId);
    if (view.docId) {
      $("doc-title").textContent = view.docId;
      $("doc-header").replaceChildren();
      $("doc-state").replaceChildren();
      $("ops-body").replaceChildren();
      $("doc-children").replaceChildren();
      loadDocument();
    }
    watch();
  }

  function reloadAll() {
    loadTypes();
    loadDocuments(false);
    route();
  }

  function wire() {
    $("token").value = token();
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
      say("");
      reloadAll();
    });
    $("token-clear").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("token").value = "";
      reloadAll();
    });
    $("search").addEventListener("submit", (event) => {
      event.preventDefault();
      view.type = $("type").value;
      view.parent = $("parent").value.trim();
      view.filter = $("filter").value;
      loadDocuments(false);
      if (!view.docId) watch();
    });
    $("type").addEventListener("change", () => $("search").requestSubmit());
    $("filter").addEventListener("input", () => {
      view.filter = $("filter").value;
      applyFilter();
    });
    $("open").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("open-id").value.trim();
      if (id) location.hash = "#/doc/" + encodeURIComponent(id);
    });
    $("documents-more").addEventListener("click", () => loadDocuments(true));
    $("ops-more").addEventListener("click", () => loadOperations("older").catch(failed));
    $("children-more").addEventListener("click", () => loadChildren(true).catch(failed));
    $("ops-scope").addEventListener("change", () => {
      view.opsScope = $("ops-scope").value;
      loadOperations("first").catch(failed);
    });
    window.addEventListener("hashchange", route);
  }

  wire();
  reloadAll();
})();
