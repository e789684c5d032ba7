// The token explorer's token grid: every model's tokens, coloured by entropy. Clicking a
// token tells Python which one (`selected`, saved to the kernel); Python then draws its
// alternatives and enables Branch. Branched tokens get a mark so the path taken is visible.

function tokenElement(m, tok, selected, branched) {
  const span = document.createElement("span");
  span.className = "enb-token enb-xtoken";
  span.dataset.model = m;
  span.dataset.index = String(tok.i);
  if (tok.entropy !== null && tok.entropy !== undefined) span.dataset.entropy = String(tok.entropy);
  if (tok.color) span.style.backgroundColor = tok.color;
  else span.classList.add("enb-noprob");
  if (selected && selected.model === m && selected.index === tok.i) span.classList.add("enb-xselected");
  if (branched.has(`${m}:${tok.i}`)) span.classList.add("enb-xbranched");
  span.title = tok.title;
  span.textContent = tok.text;
  return span;
}

function render({ model, el }) {
  el.classList.add("enb-explorer");
  const hint = document.createElement("div");
  hint.className = "enb-hint";
  hint.textContent = "click a token to see its alternatives; pick one and press Branch";
  const rows = document.createElement("div");
  rows.className = "enb-xrows";
  el.append(hint, rows);

  const draw = () => {
    const models = model.get("models") || {};
    const selected = model.get("selected") || {};
    const branched = new Set(model.get("branched") || []);
    rows.textContent = "";
    for (const [m, tokens] of Object.entries(models)) {
      const row = document.createElement("div");
      row.className = "enb-xrow";
      row.dataset.model = m;
      const name = document.createElement("div");
      name.className = "enb-model-name";
      name.textContent = m;
      const body = document.createElement("div");
      body.className = "enb-tokens";
      for (const tok of tokens) body.append(tokenElement(m, tok, selected, branched));
      row.append(name, body);
      rows.append(row);
    }
  };
  const onClick = (event) => {
    const target = event.target.closest(".enb-xtoken");
    if (!target) return;
    model.set("selected", { model: target.dataset.model, index: Number(target.dataset.index) });
    model.save_changes();
  };
  rows.addEventListener("click", onClick);
  draw();
  model.on("change:models", draw);
  model.on("change:selected", draw);
  model.on("change:branched", draw);
  return () => {
    rows.removeEventListener("click", onClick);
    model.off("change:models", draw);
    model.off("change:selected", draw);
    model.off("change:branched", draw);
  };
}

export default { render };
