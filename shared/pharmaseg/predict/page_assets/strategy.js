"use strict";
// The strategy page's behaviour: ask this function for a prediction and show it in the card.
// Data reaches the page through textContent only, never as HTML.

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function fmt(value) {
  if (typeof value !== "number") return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

function signed(value) {
  return (value >= 0 ? "+" : "") + fmt(value);
}

// FEATURE_LABELS (feature -> plain words) is defined by the page, from pharmaseg.model.features.
function label(feature) {
  return FEATURE_LABELS[feature] || feature;
}

// What the answer was computed from, in words (input_kind of the API answer).
function inputWords(a) {
  const used = a.features_used.length;
  switch (a.input_kind) {
    case "stored":
      return "its own figures in the model's training data (" + a.window + ")";
    case "series":
      return "the yearly figures given (" + a.window + ")";
    case "features":
      return "the nine features given";
    default: // partial or summary: fewer than nine features
      return (
        "only " + used + " of 9 features (" + a.features_used.join(", ") +
        "), so provisional: the others were not given (" + a.input_kind + " input)"
      );
  }
}

function featureCell(feature) {
  const td = el("td", label(feature));
  td.appendChild(el("span", feature, "code"));
  return td;
}

function row(table, name, value) {
  const tr = el("tr");
  tr.appendChild(el("th", name));
  tr.appendChild(el("td", value));
  table.appendChild(tr);
}

function show(a) {
  const card = document.getElementById("card");
  card.replaceChildren();
  card.appendChild(el("div", a.country, "country"));
  card.appendChild(el("div", a.cluster_name, "segment"));
  card.appendChild(el("div", a.recommendation));

  const facts = el("table");
  row(facts, "confidence", fmt(a.confidence) + (a.borderline ? " (borderline)" : ""));
  if (a.stability !== null) {
    row(facts, "stability", Math.round(a.stability * 100) + "% of training's resamples keep it in this segment");
  }
  row(facts, "runner-up", a.runner_up.cluster_name);
  row(facts, "computed from", inputWords(a));
  if (a.features_from) {
    const f = a.features_from;
    row(facts, "figures", "window " + f.window + " (" + f.kind + ", " + f.age_years + " years old)");
  }
  row(facts, "model", a.model_version + ", window " + a.window);
  card.appendChild(facts);
  if (a.borderline) {
    card.appendChild(el("p", "Borderline: almost as close to " + a.runner_up.cluster_name + ".", "borderline"));
  }

  card.appendChild(el("h3", "Why this segment"));
  const reasons = el("table");
  reasons.id = "reasons";
  const head = el("tr");
  ["feature", "value", "segment", "runner-up", "share"].forEach((h) => head.appendChild(el("th", h)));
  reasons.appendChild(head);
  a.reasons.forEach((r) => {
    const tr = el("tr");
    const share = r.share === null ? "-" : Math.round(r.share * 100) + "%";
    tr.appendChild(featureCell(r.feature));
    [fmt(r.value), fmt(r.segment_value), fmt(r.runner_up_value), share].forEach((c) => tr.appendChild(el("td", c)));
    reasons.appendChild(tr);
  });
  card.appendChild(reasons);
  const note = "Share: the feature's part of what separates this segment from the runner-up; over all nine " +
    "features the shares add up to 100%.";
  const pulls = a.reasons.some((r) => r.share !== null && (r.share > 1 || r.share < 0));
  card.appendChild(
    el("p", note + (pulls ? " A share above 100% means other features pull the other way (negative shares)." : ""),
      "note"),
  );

  card.appendChild(el("h3", "What would move it"));
  const w = a.what_if;
  card.appendChild(
    el("p", "The smallest change into " + w.lands_in + " (" + fmt(w.distance) + " standard deviations), " +
      "largest relative changes first:", "what-if"),
  );
  // Relative to the value it changes, so a strategist sees first what moves most.
  const relative = ([f, c]) => Math.abs(c) / Math.max(Math.abs(w.moved_values[f] - c), 1e-9);
  const changes = el("ul");
  changes.id = "what-if";
  Object.entries(w.changes)
    .sort((x, y) => relative(y) - relative(x))
    .forEach(([f, c]) => changes.appendChild(el("li", label(f) + ": " + signed(c) + " (to " + fmt(w.moved_values[f]) + ")")));
  card.appendChild(changes);
  const impossible = Object.entries(w.moved_values).filter(([f, v]) => v < 0 && !f.endsWith("_growth"));
  if (impossible.length) {
    card.appendChild(
      el("p", "This move takes " + impossible.map(([f]) => label(f)).join(", ") + " below zero, which no market " +
        "can have: it shows the direction to the other segment, not a plan.", "note"),
    );
  }
  const flip = w.single_feature;
  const alone = flip
    ? "One feature alone: " + label(flip.feature) + " " + signed(flip.change) + " (to " + fmt(flip.to) + ") makes it " +
      flip.flips_to + "."
    : w.single_feature_note;
  card.appendChild(el("p", alone));
  for (const [field, why] of Object.entries(a.ignored_fields)) {
    card.appendChild(el("p", "Ignored " + field + ": " + why, "note"));
  }
}

async function predict(body) {
  const card = document.getElementById("card");
  try {
    const response = await fetch("predict", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) {
      const problems = (answer.details || []).map((d) => d.field + " " + d.problem).join("; ");
      card.replaceChildren(el("p", answer.error + ": " + problems, "error"));
      return;
    }
    show(answer);
  } catch (error) {
    card.replaceChildren(el("p", "The prediction service did not answer: " + error, "error"));
  }
}

function select(code) {
  document.querySelectorAll(".pt.selected").forEach((p) => p.classList.remove("selected"));
  const point = document.querySelector('.pt[data-country="' + CSS.escape(code) + '"]');
  if (point) point.classList.add("selected");
  document.getElementById("country").value = code;
  predict({country: code});
}

document.getElementById("country").addEventListener("change", (e) => {
  if (e.target.value) select(e.target.value);
});
document.querySelectorAll(".pt").forEach((point) => {
  point.addEventListener("click", () => select(point.dataset.country));
  point.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      select(point.dataset.country);
    }
  });
});
document.getElementById("market").addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const body = {country: form.get("country")};
  ["USD_CAP_avg", "PC_HEALTHXP_avg", "PC_GDP_avg"].forEach((k) => (body[k] = Number(form.get(k))));
  predict(body);
});
