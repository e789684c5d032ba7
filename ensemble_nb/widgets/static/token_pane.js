// One model's pane. Python appends tokens in batches through the `chunk` trait
// ({start, tokens, reset?}); the full stream is in `tokens` only for frontends that connect
// later. Tokens are kept per model (not per view), so a pane displayed twice, or after the
// stream started, still shows every token; each view appends DOM nodes for new tokens only.

const STORES = new Map();

function storeFor(model) {
  const uid = model.get("uid");
  let store = STORES.get(uid);
  if (!store) {
    store = { tokens: [], views: new Set(), primed: false };
    STORES.set(uid, store);
  }
  return store;
}

function applyChunk(model, store, chunk) {
  if (!chunk || !Array.isArray(chunk.tokens)) return;
  const start = chunk.start || 0;
  if (chunk.reset) {
    store.tokens = chunk.tokens.slice();
  } else if (start > store.tokens.length) {
    // A gap: ask Python for the whole stream (it answers with a reset chunk).
    model.send({ type: "resync", have: store.tokens.length });
    return;
  } else {
    const fresh = chunk.tokens.slice(store.tokens.length - start);
    if (!fresh.length) return;
    for (const tok of fresh) store.tokens.push(tok);
  }
  for (const redraw of store.views) redraw(Boolean(chunk.reset));
}

function prime(model, store) {
  if (store.primed) return;
  store.primed = true;
  store.tokens = (model.get("tokens") || []).slice();
  applyChunk(model, store, model.get("chunk"));
}

function initialize({ model }) {
  const store = storeFor(model);
  prime(model, store);
  const onChunk = () => applyChunk(model, store, model.get("chunk"));
  model.on("change:chunk", onChunk);
  return () => model.off("change:chunk", onChunk);
}

function tokenElement(tok) {
  const span = document.createElement("span");
  span.className = "enb-token";
  span.dataset.index = String(tok.i);
  span.dataset.kind = tok.kind;
  if (tok.entropy !== null && tok.entropy !== undefined) span.dataset.entropy = String(tok.entropy);
  if (tok.color) {
    span.style.backgroundColor = tok.color;
  } else {
    span.classList.add("enb-noprob");
  }
  if (tok.kind === "topk") span.classList.add("enb-topk");
  span.title = tok.title;
  span.textContent = tok.text;
  return span;
}

function render({ model, el }) {
  const store = storeFor(model);
  prime(model, store);
  const member = model.get("member");
  el.classList.add("enb-pane");
  el.dataset.model = member;

  const header = document.createElement("div");
  header.className = "enb-pane-header";
  const name = document.createElement("span");
  name.className = "enb-model-name";
  name.textContent = member;
  const status = document.createElement("span");
  status.className = "enb-status";
  const stats = document.createElement("span");
  stats.className = "enb-stats";
  header.append(name, status, stats);
  const detail = document.createElement("div");
  detail.className = "enb-detail";
  const body = document.createElement("div");
  body.className = "enb-tokens";
  const waiting = document.createElement("span");
  waiting.className = "enb-waiting";
  waiting.textContent = "waiting for the first token…";
  el.append(header, detail, body);

  let drawn = 0;
  const draw = (reset) => {
    if (reset) {
      body.textContent = "";
      drawn = 0;
    }
    const stick = body.scrollHeight - body.scrollTop - body.clientHeight < 24;
    if (drawn === 0 && store.tokens.length === 0) {
      if (!waiting.isConnected) body.append(waiting);
      return;
    }
    if (waiting.isConnected) waiting.remove();
    const frag = document.createDocumentFragment();
    for (let i = drawn; i < store.tokens.length; i++) frag.append(tokenElement(store.tokens[i]));
    drawn = store.tokens.length;
    body.append(frag);
    if (stick) body.scrollTop = body.scrollHeight;
  };
  const drawHeader = () => {
    const s = model.get("stats") || {};
    const value = model.get("status");
    status.textContent = value.replace("_", " ");
    status.dataset.status = value;
    el.dataset.status = value;
    stats.textContent = s.text || "";
    detail.textContent = s.detail || "";
    detail.hidden = !s.detail;
  };

  store.views.add(draw);
  draw(true);
  drawHeader();
  model.on("change:status", drawHeader);
  model.on("change:stats", drawHeader);
  return () => {
    store.views.delete(draw);
    model.off("change:status", drawHeader);
    model.off("change:stats", drawHeader);
  };
}

export default { initialize, render };
