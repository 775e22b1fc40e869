// helexa live fleet page: polls /admin/fleet, /admin/stats and /admin/usage and redraws.
// No framework and no build step; every value from the gateway goes in through
// textContent, never innerHTML, so a model name cannot inject markup.
"use strict";

const POLL_MS = 2000;
const RECENT_DECISIONS = 15;
const EVICTION_KINDS = new Set(["evict", "unload", "keep_alive"]);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function badge(text, kind) {
  return el("span", { class: `badge ${kind || text}` }, text);
}

function gigabytes(mb) {
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${mb} MB`;
}

function clock(unixSeconds) {
  return new Date(unixSeconds * 1000).toISOString().slice(11, 19);
}

function age(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d`;
}

function rate(value) {
  return value === null || value === undefined ? "–" : value.toFixed(value < 10 ? 2 : 0);
}

function share(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

function memoryBar(device) {
  const used = device.memory_total_mb - device.memory_free_mb;
  const fraction = device.memory_total_mb > 0 ? used / device.memory_total_mb : 0;
  const fill = el("span", { class: fraction >= 0.9 ? "full" : fraction >= 0.7 ? "warn" : "" });
  fill.style.width = `${Math.min(100, fraction * 100).toFixed(1)}%`;
  return el(
    "div",
    { class: "device", "data-device": `${device.kind}:${device.index}` },
    el(
      "div",
      { class: "label" },
      el("span", {}, `${device.kind}:${device.index} ${device.name}`),
      el("span", {}, `${gigabytes(used)} / ${gigabytes(device.memory_total_mb)}`),
    ),
    el("div", { class: "bar", title: `${Math.round(fraction * 100)}% used` }, fill),
  );
}

function neuronCard(neuron) {
  const state = neuron.healthy ? "up" : neuron.starting ? "starting" : "down";
  const card = el(
    "div",
    { class: "card", "data-neuron": neuron.name, "data-state": state },
    el("h3", {}, neuron.name, badge(state), el("span", { class: "muted" }, neuron.kind)),
  );
  if (neuron.hostname || neuron.version) {
    card.append(el("div", { class: "muted" }, [neuron.hostname, neuron.version].filter(Boolean).join(" · ")));
  }
  for (const device of neuron.devices || []) card.append(memoryBar(device));
  if (!neuron.healthy) card.append(el("div", { class: "alert" }, neuron.last_error || "never answered"));
  const held = (neuron.models || []).map((m) => m.model);
  card.append(el("div", { class: "muted" }, held.length ? `holds ${held.join(", ")}` : "holds no model"));
  return card;
}

function lastEvictions(decisions) {
  const out = new Map();
  for (const d of decisions) if (EVICTION_KINDS.has(d.kind)) out.set(d.model, d);
  return out;
}

// When each (model, neuron) load was decided: a loading copy shows how long it has taken.
function loadStarts(decisions) {
  const out = new Map();
  for (const d of decisions) if (d.kind === "load") out.set(`${d.model}\u0000${d.neuron}`, d.at);
  return out;
}

function modelRow(model, stats, details, decisions, now) {
  const where = el("div", { class: "where" });
  let busy = 0;
  let idle = "–";
  for (const loc of model.locations) {
    const started = decisions.loads.get(`${model.id}\u0000${loc.neuron}`);
    const loading = loc.state === "loading";
    // "loading 42% 1m": the share of weights read (when the neuron measures it), time taken
    const percent = loading && loc.progress != null ? ` ${loc.progress}%` : "";
    const elapsed = loading && started ? ` ${age(now - started)}` : "";
    where.append(badge(`${loc.neuron}: ${loc.state}${percent}${elapsed}`, loc.state));
    busy += loc.in_flight + loc.queued;
    const detail = details.get(`${model.id}\u0000${loc.neuron}`) || {};
    const since = detail.last_used_at || detail.loaded_at;
    if (loc.state === "loaded" && since) idle = age(now - since);
  }
  let state = model.locations.some((l) => l.state === "loaded") ? "loaded" : "absent";
  if (!model.locations.length) {
    const evicted = decisions.evictions.get(model.id);
    state = evicted ? "evicted" : "absent";
    where.append(
      evicted
        ? badge(`evicted ${clock(evicted.at)} (${evicted.kind})`, "evicted")
        : badge("not loaded", "absent"),
    );
  } else if (!model.locations.some((l) => l.state === "loaded")) {
    state = model.locations[0].state;
  }
  const ttft = (stats && stats.ttft_s) || {};
  const name = el("td", {}, model.id, model.pinned ? " " : null, model.pinned ? badge("pinned", "info") : null);
  return el(
    "tr",
    { "data-model": model.id, "data-state": state },
    name,
    el("td", { class: "wide-only" }, model.engine || "transformers"),
    el("td", {}, where),
    el("td", { class: "num" }, busy ? String(busy) : "idle"),
    el("td", { class: "num" }, rate(stats && stats.requests_per_s)),
    el("td", { class: "num" }, rate(stats && stats.tokens_per_s)),
    el("td", { class: "num wide-only" }, share(stats && stats.prefix_cache_hit_rate)),
    el("td", { class: "num wide-only" }, `${seconds(ttft.p50)} / ${seconds(ttft.p90)} / ${seconds(ttft.p99)}`),
    el("td", { class: "num wide-only" }, busy ? "busy" : idle),
  );
}

function renderHeader(fleet, at) {
  const health = fleet.health || {};
  const status = document.getElementById("fleet-status");
  status.className = `badge ${health.status}`;
  status.textContent = health.status || "unknown";
  const counts = health.neurons || {};
  document.getElementById("neuron-count").textContent = `${counts.healthy}/${counts.total} neurons up`;
  document.getElementById("updated").textContent = `updated ${clock(at)} UTC`;
}

function renderAlerts(fleet) {
  const messages = [...((fleet.health || {}).warnings || [])];
  const configError = (fleet.config || {}).error || (fleet.reconcile || {}).config_error;
  if (configError) messages.push(`config error (the last good config stays in use):\n${configError}`);
  if ((fleet.reconcile || {}).restart_required) messages.push(fleet.reconcile.restart_required);
  document.getElementById("alerts").replaceChildren(...messages.map((m) => el("div", { class: "alert" }, m)));
}

function renderModels(fleet, stats, now) {
  const byModel = new Map((stats.models || []).map((s) => [s.model, s]));
  const details = new Map();
  for (const neuron of fleet.neurons || []) {
    for (const m of neuron.models || []) details.set(`${m.model}\u0000${neuron.name}`, m);
  }
  const decisions = {
    evictions: lastEvictions(fleet.decisions || []),
    loads: loadStarts(fleet.decisions || []),
  };
  const rows = (fleet.models || []).map((m) => modelRow(m, byModel.get(m.id), details, decisions, now));
  document.querySelector("#models tbody").replaceChildren(...rows);
}

function limitsText(limits) {
  if (!limits) return "–";
  const parts = [];
  if (limits.requests_per_minute) parts.push(`${limits.requests_per_minute} req/min`);
  if (limits.tokens_per_minute) parts.push(`${limits.tokens_per_minute} tok/min`);
  if (limits.max_concurrent) parts.push(`${limits.max_concurrent} at once`);
  return parts.length ? parts.join(", ") : "none";
}

function renderKeys(usage) {
  const keys = usage.keys || [];
  const rows = keys.map((k) =>
    el("tr", { "data-key": k.key },
      el("td", {}, k.key, k.limits && k.limits.role === "admin" ? badge("admin", "info") : null),
      el("td", {}, (k.models || []).map((m) => m.model || "–").join(", ")),
      el("td", { class: "num" }, k.requests),
      el("td", { class: "num" }, k.errors),
      el("td", { class: "num" }, k.input_tokens),
      el("td", { class: "num" }, k.output_tokens),
      el("td", { class: "num wide-only" }, k.limits ? k.limits.in_flight : "–"),
      el("td", { class: "wide-only" }, limitsText(k.limits))),
  );
  document.querySelector("#keys tbody").replaceChildren(
    ...(rows.length
      ? rows
      : [el("tr", {}, el("td", { colspan: "8", class: "muted" }, "no requests with a key in the last hour"))]),
  );
}

function renderReconcile(reconcile) {
  const conditions = document.getElementById("conditions");
  const plan = document.getElementById("plan");
  if (!reconcile) {
    conditions.replaceChildren(el("li", { class: "muted" }, "the reconcile daemon does not run in this gateway"));
    plan.replaceChildren();
    return;
  }
  conditions.replaceChildren(
    ...(reconcile.conditions || []).map((c) =>
      el("li", { "data-condition": c.type }, badge(c.type, c.status), ` ${c.reason}`,
        c.message ? el("div", { class: "muted" }, c.message) : null),
    ),
  );
  const actions = reconcile.pending || [];
  plan.replaceChildren(
    ...(actions.length
      ? actions.map((a) => el("li", {}, `${a.symbol || ""} ${a.kind} ${a.model || a.target} on ${a.neuron}`,
          el("div", { class: "muted" }, a.reason || "")))
      : [el("li", { class: "muted" }, "no pending actions: the fleet matches models.toml")]),
  );
}

function renderDecisions(decisions) {
  const recent = decisions.slice(-RECENT_DECISIONS).reverse();
  document.getElementById("decisions").replaceChildren(
    ...(recent.length
      ? recent.map((d) => el("li", { "data-decision": d.kind },
          el("span", { class: "when" }, clock(d.at)), badge(d.kind, "info"),
          ` ${d.model}${d.neuron ? ` → ${d.neuron}` : ""}`, el("div", { class: "muted" }, d.reason)))
      : [el("li", { class: "muted" }, "no decisions yet")]),
  );
}

function render(fleet, stats, usage) {
  const now = stats.at || Date.now() / 1000;
  renderHeader(fleet, now);
  renderAlerts(fleet);
  document.getElementById("neurons").replaceChildren(...(fleet.neurons || []).map(neuronCard));
  renderModels(fleet, stats, now);
  renderKeys(usage);
  renderReconcile(fleet.reconcile);
  renderDecisions(fleet.decisions || []);
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) {
    window.location.assign("/ui"); // the cookie expired or the key was removed: sign in again
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function poll() {
  try {
    const [fleet, stats, usage] = await Promise.all([
      getJson("/admin/fleet"), getJson("/admin/stats"), getJson("/admin/usage?window=1h"),
    ]);
    render(fleet, stats, usage);
  } catch (error) {
    const status = document.getElementById("fleet-status");
    status.className = "badge down";
    status.textContent = `gateway unreachable (${error.message})`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
