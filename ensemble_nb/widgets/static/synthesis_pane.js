// The synthesized answer: spans coloured by confidence. Clicking a span selects it and
// tells Python (`selected`, saved to the kernel), where the Retry span button reads it.

function fmt(x) {
  return typeof x === "number" ? x.toFixed(2) : "?";
}

function retryLine(r) {
  const li = document.createElement("li");
  li.className = "enb-retry-item";
  li.dataset.index = String(r.index);
  li.dataset.accepted = String(r.accepted);
  const verdict = r.accepted ? "kept" : "discarded (not more confident)";
  const label = document.createElement("span");
  label.textContent = `span ${r.index} retried with ${r.model}: `;
  const fresh = document.createElement("span");
  fresh.className = "enb-retry-new";
  fresh.style.backgroundColor = r.new_color;
  fresh.textContent = r.new_text.trim() || "(empty)";
  const tail = document.createElement("span");
  tail.textContent = ` — confidence ${fmt(r.old_confidence)} → ${fmt(r.new_confidence)}, ${verdict}`;
  li.append(label, fresh, tail);
  return li;
}

function render({ model, el }) {
  el.classList.add("enb-synthesis");
  const title = document.createElement("div");
  title.className = "enb-synthesis-title";
  const answer = document.createElement("div");
  answer.className = "enb-answer";
  const hint = document.createElement("div");
  hint.className = "enb-hint";
  const notice = document.createElement("div");
  notice.className = "enb-notice";
  const retries = document.createElement("ul");
  retries.className = "enb-retries";
  el.append(title, answer, hint, notice, retries);

  const draw = () => {
    const spans = model.get("spans") || [];
    const selected = model.get("selected");
    const summary = model.get("summary");
    title.textContent = summary ? `Synthesis: ${summary}` : "Synthesis";
    answer.textContent = "";
    if (!spans.length) {
      const waiting = document.createElement("span");
      waiting.className = "enb-waiting";
      waiting.textContent = "the synthesis appears when every model has ended";
      answer.append(waiting);
    }
    for (const s of spans) {
      const span = document.createElement("span");
      span.className = "enb-span";
      span.dataset.index = String(s.i);
      span.dataset.model = s.model;
      span.dataset.confidence = String(s.confidence);
      span.style.backgroundColor = s.color;
      span.title = s.title;
      span.textContent = s.text;
      if (s.i === selected) span.classList.add("enb-selected");
      if (s.retried) {
        span.classList.add("enb-span-retried");
        span.dataset.retryAccepted = String(s.retried.accepted);
      }
      span.addEventListener("click", () => {
        model.set("selected", s.i === model.get("selected") ? -1 : s.i);
        model.save_changes();
      });
      answer.append(span);
    }
    hint.textContent = !spans.length
      ? ""
      : selected >= 0 && selected < spans.length
        ? `span ${selected} selected — press “Retry span” to regenerate it`
        : "click a span to select it";
    notice.textContent = model.get("notice") || "";
    notice.hidden = !notice.textContent;
    retries.textContent = "";
    for (const r of model.get("retries") || []) retries.append(retryLine(r));
  };

  draw();
  for (const name of ["spans", "selected", "summary", "notice", "retries"]) {
    model.on(`change:${name}`, draw);
  }
  return () => {
    for (const name of ["spans", "selected", "summary", "notice", "retries"]) {
      model.off(`change:${name}`, draw);
    }
  };
}

export default { render };
