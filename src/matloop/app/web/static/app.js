// matloop web page: chat, campaigns, runs and the 3D viewer. Plain ES module, no build step.

const $ = (sel) => document.querySelector(sel);
const PHASES = ["interpret", "ideate", "review_hypotheses", "plan", "review_plan", "approve",
  "execute", "expand", "report"];

// A tiny element builder: h("td", {class: "num"}, "1.0"). Text always goes in as text.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const fmt = (v, digits = 3, sign = false) =>
  v === null || v === undefined ? "—" : (sign && v >= 0 ? "+" : "") + Number(v).toFixed(digits);

async function api(path, options = {}) {
  const init = { ...options, headers: { "Content-Type": "application/json", ...(options.headers || {}) } };
  const res = await fetch(path, init);
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    const err = new Error(body.error ? body.error + (body.hint ? ` (${body.hint})` : "") : res.statusText);
    err.status = res.status;
    throw err;
  }
  return body;
}

// Server-sent events from a fetch() response (POST streams, which EventSource cannot send).
async function* readSSE(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let match;
    while ((match = buffer.match(/\r?\n\r?\n/))) {
      const block = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      let event = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

// Text with evidence ids, DOIs and run links turned into links.
function linkify(text, evidence = {}) {
  const out = [];
  const pattern = /(ev-[0-9a-f]{6,})|doi:\s?(10\.[^\s)\]]+[^\s)\].,;])|#run\/([A-Za-z0-9._-]+)/g;
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    out.push(text.slice(last, m.index));
    if (m[1]) {
      const ev = evidence[m[1]];
      out.push(ev && ev.url
        ? h("a", { href: ev.url, target: "_blank", rel: "noopener", class: "cite", title: ev.title || "" }, m[1])
        : h("span", { class: "cite", title: "no DOI for this evidence" }, m[1]));
    } else if (m[2]) {
      out.push(h("a", { href: `https://doi.org/${m[2]}`, target: "_blank", rel: "noopener", class: "cite" }, `doi:${m[2]}`));
    } else {
      out.push(h("a", { href: `#run/${m[3]}` }, `campaign ${m[3]}`));
    }
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

// ---------------------------------------------------------------- tabs
function show(tab) {
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${tab}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === tab);
}

function route() {
  const hash = location.hash.slice(1) || "chat";
  if (hash.startsWith("run/")) { show("run"); openRun(decodeURIComponent(hash.slice(4))); return; }
  closeRun();
  show(["chat", "campaign", "runs"].includes(hash) ? hash : "chat");
  if (hash === "runs") loadRuns();
}

// ---------------------------------------------------------------- chat
// The thread id is kept in the browser, so a reload (or a restarted server, which keeps its
// threads in SQLite) continues the conversation.
const THREAD_KEY = "matloop-chat-thread";
const MAX_UPLOAD_BYTES = 5 * 1024 * 1024;
const SVG = "http://www.w3.org/2000/svg";
let chatThread = localStorage.getItem(THREAD_KEY) || newThread();
let attachment = null; // {upload_id, name, formula, n_atoms}

function newThread() {
  const id = `web-${Math.random().toString(16).slice(2, 10)}`;
  localStorage.setItem(THREAD_KEY, id);
  return id;
}

function showChatError(text) {
  $("#chat-error").textContent = text || "";
  $("#chat-error").hidden = !text;
}

function setAttachment(info) {
  attachment = info;
  $("#chat-attachment").hidden = !info;
  $("#chat-attachment-name").textContent = info
    ? `📎 ${info.name} (${info.formula}, ${info.n_atoms} atoms)` : "";
}

async function uploadFile(file) {
  showChatError("");
  if (file.size > MAX_UPLOAD_BYTES) { showChatError(`${file.name} is larger than 5 MiB`); return; }
  const url = `/api/uploads?thread_id=${encodeURIComponent(chatThread)}&name=${encodeURIComponent(file.name)}`;
  try {
    const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file });
    const body = await res.json();
    if (!res.ok) throw new Error(`${body.error}${body.hint ? ` (${body.hint})` : ""}`);
    setAttachment(body);
  } catch (err) {
    setAttachment(null);
    showChatError(`Upload of ${file.name} failed: ${err.message || err}`);
  }
}

$("#chat-file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  e.target.value = "";
  if (file) uploadFile(file);
});
$("#chat-attachment-remove").addEventListener("click", () => setAttachment(null));
for (const type of ["dragenter", "dragover"]) {
  $("#chat-form").addEventListener(type, (e) => { e.preventDefault(); $("#chat-form").classList.add("dragging"); });
}
$("#chat-form").addEventListener("dragleave", () => $("#chat-form").classList.remove("dragging"));
$("#chat-form").addEventListener("drop", (e) => {
  e.preventDefault();
  $("#chat-form").classList.remove("dragging");
  const file = e.dataTransfer?.files?.[0];
  if (file) uploadFile(file);
});

function cell(value, column) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(+value.toFixed(4));
  const text = String(value);
  if (/^mp-\d+$/.test(text)) return h("a", { href: `https://next-gen.materialsproject.org/materials/${text}`, target: "_blank", rel: "noopener" }, text);
  if (column === "DOI" && /^10\./.test(text)) return h("a", { href: `https://doi.org/${text}`, target: "_blank", rel: "noopener", class: "cite" }, text);
  return text;
}

function renderTable(t) {
  return h("figure", { class: "answer-table" },
    h("figcaption", {}, t.title),
    h("table", {},
      h("thead", {}, h("tr", {}, t.columns.map((c) => h("th", {}, c)))),
      h("tbody", {}, t.rows.map((r) => h("tr", {}, r.map((v, i) => h("td", { class: typeof v === "number" ? "num" : null }, cell(v, t.columns[i]))))))),
    t.note ? h("p", { class: "note" }, t.note) : null);
}

function svgEl(tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== null) el.textContent = text;
  return el;
}

// A hull figure from the answer's data: a binary's formation energy against composition, or
// a ternary's composition triangle with tie lines. Filled points lie on the hull.
function renderHull(plot) {
  const W = 380, H = plot.kind === "binary" ? 250 : 300, m = 36;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "hull", "data-kind": plot.kind, role: "img" });
  svg.append(svgEl("title", {}, `Known phases of ${plot.system}`));
  let X, Y;
  if (plot.kind === "binary") {
    const ys = plot.points.map((p) => p.y);
    const lo = Math.min(...ys, -0.1) * 1.1, hi = Math.max(...ys, 0) + 0.05;
    X = (x) => m + x * (W - 2 * m);
    Y = (y) => 12 + (hi - y) / (hi - lo) * (H - m - 12);
    svg.append(svgEl("line", { x1: X(0), y1: Y(0), x2: X(1), y2: Y(0), class: "axis" }));
    svg.append(svgEl("text", { x: 4, y: 14, class: "axis-label" }, "E_form (eV/atom)"));
    svg.append(svgEl("text", { x: X(0), y: H - 6, "text-anchor": "middle", class: "corner" }, plot.corners[0]));
    svg.append(svgEl("text", { x: X(1), y: H - 6, "text-anchor": "middle", class: "corner" }, plot.corners[1]));
    svg.append(svgEl("text", { x: 4, y: Y(lo) , class: "axis-label" }, lo.toFixed(2)));
  } else {
    const s = (W - 2 * m), top = 14;
    X = (x) => m + x * s;
    Y = (y) => top + (Math.sqrt(3) / 2 - y) * s;
    const c = [[0, 0], [1, 0], [0.5, Math.sqrt(3) / 2]];
    svg.append(svgEl("polygon", { points: c.map(([x, y]) => `${X(x)},${Y(y)}`).join(" "), class: "triangle" }));
    plot.corners.forEach((name, i) => svg.append(svgEl("text", {
      x: X(c[i][0]) + (i === 0 ? -10 : i === 1 ? 10 : 0), y: Y(c[i][1]) + (i === 2 ? -4 : 14),
      "text-anchor": "middle", class: "corner" }, name)));
  }
  for (const [x1, y1, x2, y2] of plot.lines) {
    svg.append(svgEl("line", { x1: X(x1), y1: Y(y1), x2: X(x2), y2: Y(y2), class: "tie" }));
  }
  for (const p of plot.points) {
    const stable = p.e_above_hull_ev_per_atom <= 1e-6;
    const g = svgEl("g", { class: `phase${stable ? " stable" : ""}${p.highlight ? " highlight" : ""}`, "data-formula": p.formula });
    g.append(svgEl("circle", { cx: X(p.x), cy: Y(p.y), r: p.highlight ? 5 : 3.5 }));
    g.append(svgEl("title", {}, `${p.formula}: ${p.e_above_hull_ev_per_atom.toFixed(3)} eV/atom above the hull, E_form ${p.formation_energy_ev_per_atom.toFixed(3)} eV/atom${p.mp_id ? ` (${p.mp_id})` : ""}`));
    const corner = plot.corners.includes(p.formula);
    if ((stable || p.highlight) && !corner) g.append(svgEl("text", { x: X(p.x) + 5, y: Y(p.y) - 5, class: "label" }, p.formula));
    svg.append(g);
  }
  return h("figure", { class: "answer-plot" }, svg, h("figcaption", {}, plot.caption));
}

function showStructure(box, s) {
  const div = h("div", { class: "viewer-inline", "data-formula": s.formula || "" });
  box.replaceChildren(h("div", { class: "viewer-head" }, h("strong", {}, s.title),
    h("a", { href: URL.createObjectURL(new Blob([s.cif], { type: "chemical/x-cif" })), download: `${s.formula || "structure"}.cif` }, "Download CIF")), div);
  const v = window.$3Dmol.createViewer(div, { backgroundColor: "white" });
  const model = v.addModel(s.cif, "cif", { doAssembly: true, duplicateAssemblyAtoms: true, normalizeAssembly: true });
  v.setStyle({}, { sphere: { scale: 0.3, colorscheme: "Jmol" }, stick: { radius: 0.12, colorscheme: "Jmol" } });
  v.addUnitCell(model, { box: { color: "black" } });
  v.replicateUnitCell(2, 2, 2, model);
  v.zoomTo();
  v.render();
  div.dataset.atoms = String(model.selectedAtoms({}).length);
}

function renderAnswer(box, text, answer, evidence = {}, { live = false } = {}) {
  const sources = answer?.sources || [];
  const shown = sources.length ? text.replace(/\n\nSources: [\s\S]*$/, "") : text;
  const parts = [h("div", { class: "answer-text" }, ...linkify(shown, evidence))];
  for (const t of answer?.tables || []) parts.push(renderTable(t));
  for (const p of answer?.plots || []) parts.push(renderHull(p));
  const viewers = [];
  for (const s of answer?.structures || []) {
    const holder = h("div", { class: "structure" });
    holder.append(h("button", { type: "button", class: "view3d secondary", onclick: () => showStructure(holder, s) }, `3D: ${s.title}`));
    viewers.push([holder, s]);
    parts.push(holder);
  }
  if (sources.length) {
    parts.push(h("details", { class: "sources" }, h("summary", {}, `Sources (${sources.length})`),
      h("ul", {}, sources.map((s) => h("li", { "data-kind": s.kind },
        s.url ? h("a", { href: s.url, target: s.url.startsWith("#") ? null : "_blank", rel: "noopener" }, s.label) : s.label)))));
  }
  if (answer?.campaign_query) {
    parts.push(h("button", { type: "button", class: "to-campaign secondary", onclick: () => {
      location.hash = "campaign";
      $("#campaign-form input[name=query]").value = answer.campaign_query;
    } }, `Turn into a campaign: “${answer.campaign_query}”`));
  }
  box.replaceChildren(...parts);
  if (live && viewers.length) showStructure(...viewers[0]);
}

function renderUser(text, upload) {
  $("#chat-log").append(h("div", { class: "turn user" }, text,
    upload ? h("div", { class: "attached" }, `📎 ${upload}`) : null));
}

async function loadHistory() {
  $("#chat-thread").textContent = `conversation ${chatThread}`;
  let turns = [];
  try { turns = await api(`/api/chat/${encodeURIComponent(chatThread)}`); } catch { return; }
  for (const t of turns) {
    if (t.role === "user") renderUser(t.text, t.upload);
    else {
      const answer = h("div", { class: "answer" });
      $("#chat-log").append(h("div", { class: "turn assistant", "data-state": "done" }, answer));
      renderAnswer(answer, t.text, t.answer);
    }
  }
}

$("#chat-new").addEventListener("click", () => {
  chatThread = newThread();
  $("#chat-log").replaceChildren();
  setAttachment(null);
  $("#chat-thread").textContent = `conversation ${chatThread}`;
});

$("#chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const upload = attachment;
  const text = $("#chat-input").value.trim() || (upload ? "Relax this structure" : "");
  if (!text) return;
  $("#chat-input").value = "";
  setAttachment(null);
  showChatError("");
  $("#chat-send").disabled = true;
  renderUser(text, upload ? `${upload.name} (${upload.formula})` : null);
  const steps = h("div", { class: "steps" });
  const answer = h("div", { class: "answer" });
  const turn = h("div", { class: "turn assistant", "data-state": "running" }, steps, answer);
  $("#chat-log").append(turn);
  const tools = {};
  let progress = null;
  try {
    const body = { message: text, thread_id: chatThread };
    if (upload) body.upload_id = upload.upload_id;
    const res = await fetch("/api/chat", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!res.ok) {
      const err = await res.json();
      throw new Error(`${err.error}${err.hint ? ` (${err.hint})` : ""}`);
    }
    for await (const { event, data } of readSSE(res)) {
      if (event === "step") steps.append(h("div", { class: "step-node" }, data.node));
      else if (event === "tool_start") {
        const d = h("details", { class: "tool running", "data-tool": data.name },
          h("summary", {}, `${data.name}`),
          h("div", {}, "arguments"), h("pre", { class: "args" }, JSON.stringify(data.args, null, 2)));
        tools[data.run_id] = d;
        steps.append(d);
      } else if (event === "progress") {
        if (!progress) { progress = h("div", { class: "progress" }); steps.append(progress); }
        progress.textContent = `${data.stage}${data.total ? ` (${data.done}/${data.total})` : ""}`;
      } else if (event === "tool_end") {
        const d = tools[data.run_id] || steps.appendChild(h("details", { class: "tool" }, h("summary", {}, data.name)));
        d.classList.remove("running");
        d.classList.add(data.status === "error" || data.status === "timeout" ? "error" : "ok");
        d.querySelector("summary").textContent = `${data.name} — ${data.summary.split("\n")[0].slice(0, 120)}`;
        // The evidence the tool returned (ids the answer may cite), under its summary.
        const cited = (data.evidence || []).map((e) => `${e.id}  ${e.title || ""}${e.doi ? `  doi:${e.doi}` : ""}`);
        d.append(h("div", {}, "result"), h("pre", { class: "result" }, [data.summary, ...cited].join("\n")));
      } else if (event === "token") answer.append(data.text);
      else if (event === "answer") {
        renderAnswer(answer, data.text, data.answer, data.evidence, { live: true });
      } else if (event === "error") {
        answer.append(h("p", { class: "error" }, `${data.message}${data.hint ? ` (${data.hint})` : ""}`));
      }
    }
  } catch (err) {
    answer.append(h("p", { class: "error" }, String(err.message || err)));
  } finally {
    turn.dataset.state = "done";
    $("#chat-send").disabled = false;
  }
});

$("#chat-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#chat-form").requestSubmit(); }
});
loadHistory();

// ---------------------------------------------------------------- new campaign
$("#campaign-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const body = {
    query: f.get("query"), max_evaluations: Number(f.get("max_evaluations")),
    max_iterations: Number(f.get("max_iterations")), require_approval: f.get("require_approval") === "on",
  };
  if (f.get("thread_id")) body.thread_id = f.get("thread_id").trim();
  $("#campaign-error").hidden = true;
  try {
    const started = await api("/api/campaigns", { method: "POST", body: JSON.stringify(body) });
    location.hash = `run/${started.id}`;
  } catch (err) {
    $("#campaign-error").textContent = err.message;
    $("#campaign-error").hidden = false;
  }
});

// ---------------------------------------------------------------- runs list
async function loadRuns() {
  const rows = await api("/api/runs");
  $("#runs-table tbody").replaceChildren(...rows.map((r) => h("tr", {},
    h("td", {}, h("a", { href: `#run/${r.id}` }, r.id)), h("td", {}, r.query),
    h("td", {}, h("span", { class: `badge ${r.state}` }, r.state)), h("td", {}, r.status),
    h("td", { class: "num" }, r.candidates))));
  if (!rows.length) $("#runs-table tbody").append(h("tr", {}, h("td", { colspan: 5 }, "No runs yet.")));
}
$("#runs-refresh").addEventListener("click", loadRuns);

// ---------------------------------------------------------------- one run, live
let current = null; // { id, source, timer }

function closeRun() {
  if (current) { current.source?.close(); clearTimeout(current.timer); current = null; }
}

function openRun(id) {
  closeRun();
  current = { id };
  $("#run-id").textContent = id;
  $("#events").replaceChildren();
  $("#report").hidden = true;
  $("#approval").hidden = true;
  $("#plan-editor").hidden = true;
  $("#viewer-panel").hidden = true;
  refreshRun();
  const source = new EventSource(`/api/campaigns/${encodeURIComponent(id)}/events`);
  current.source = source;
  source.addEventListener("log", (e) => {
    const ev = JSON.parse(e.data);
    addEvent(ev);
    if (ev.type !== "progress") scheduleRefresh();
  });
  source.addEventListener("status", () => scheduleRefresh());
  source.addEventListener("end", () => { source.close(); scheduleRefresh(); });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) scheduleRefresh(); };
}

function scheduleRefresh() {
  if (!current || current.timer) return;
  current.timer = setTimeout(() => { if (current) { current.timer = null; refreshRun(); } }, 300);
}

function describeEvent(ev) {
  switch (ev.type) {
    case "node_start": return `▶ ${ev.node} (iteration ${ev.iteration ?? 0})`;
    case "tool_call": return `  ${ev.tool} [${ev.status}] ${ev.summary ?? ""} (${fmt(ev.duration_s, 1)} s)`;
    case "llm_call": return `  ${ev.role} ${ev.model} ${ev.input_tokens}+${ev.output_tokens} tokens`;
    case "node_error": return `  ${ev.node} failed: ${ev.error}`;
    case "plan_approval": return `  plan ${ev.approved ? "approved" : "rejected"} by ${ev.by}${ev.edited ? " (edited)" : ""}${ev.feedback ? `: ${ev.feedback}` : ""}`;
    case "approval_requested": return "  waiting for plan approval";
    case "budget": return `  budget: ${ev.exhausted || ev.note}`;
    case "query_problem": return `  assumed: ${ev.assumption} (${ev.message})`;
    case "node_end": return null;
    default: return `${ev.type}${ev.status ? `: ${ev.status}` : ""}${ev.error ? `: ${ev.error}` : ""}`;
  }
}

// Progress inside a tool call (one line per tool and stage, updated in place).
function showProgress(ev) {
  const key = `${ev.tool}|${ev.stage}`;
  const text = `  ${ev.tool}: ${ev.stage} ${ev.done}/${ev.total}`;
  const line = [...$("#events").children].find((li) => li.dataset.progress === key);
  if (line) { line.textContent = `${ev.time_utc?.slice(11, 19) ?? ""} ${text}`; return; }
  $("#events").append(h("li", { "data-type": "progress", "data-progress": key }, `${ev.time_utc?.slice(11, 19) ?? ""} ${text}`));
  $("#events").scrollTop = $("#events").scrollHeight;
}

function addEvent(ev) {
  if (ev.type === "progress") { showProgress(ev); return; }
  for (const li of $("#events").querySelectorAll("li[data-progress]")) delete li.dataset.progress;
  const text = describeEvent(ev);
  if (text === null) return;
  $("#events").append(h("li", { "data-type": ev.type }, `${ev.time_utc?.slice(11, 19) ?? ""} ${text}`));
  $("#events").scrollTop = $("#events").scrollHeight;
}

async function refreshRun() {
  if (!current) return;
  const id = current.id;
  let run;
  try { run = await api(`/api/runs/${encodeURIComponent(id)}`); } catch (err) {
    $("#run-error").textContent = err.message; $("#run-error").hidden = false; return;
  }
  if (!current || current.id !== id) return;
  $("#run-error").hidden = !run.error;
  $("#run-error").textContent = run.error || "";
  $("#run-query").textContent = run.query;
  const badge = $("#run-state");
  badge.textContent = run.state + (run.status && run.state === "finished" ? ` — ${run.status}` : "");
  badge.className = `badge ${run.state}`;
  badge.dataset.state = run.state;
  const at = PHASES.indexOf(run.phase);
  $("#run-phases").replaceChildren(...PHASES.map((p, i) => h("li", {
    class: i === at && run.state !== "finished" ? "current" : (i <= at || run.state === "finished" ? "done" : ""),
  }, p === "execute" ? `${p} · iteration ${run.iteration}` : p)));
  renderBudget(run);
  $("#run-stop").hidden = !["running", "awaiting_approval"].includes(run.state);
  $("#run-resume").hidden = !["interrupted", "stopped", "failed"].includes(run.state);
  renderApproval(run);
  renderCandidates(run);
  if (run.state === "finished") renderReport(run);
}

function renderBudget(run) {
  const b = run.budget || {}, u = run.usage || {};
  const meter = (label, used, max, unit = "") => h("div", { class: "meter", "data-meter": label },
    h("span", {}, `${label}: ${used ?? 0}${max ? ` / ${max}` : ""} ${unit}`),
    max ? h("meter", { min: 0, max, value: Math.min(used ?? 0, max) }) : null);
  $("#run-budget").replaceChildren(
    meter("iterations", u.iterations, b.max_iterations),
    meter("MLIP evaluations", u.mlip_evaluations, b.max_evaluations),
    meter("tool calls", u.tool_calls, null),
    meter("LLM calls", u.llm_calls, b.max_llm_calls),
    meter("cost", fmt(u.cost_usd ?? 0, 4), b.max_cost_usd, "USD"),
    meter("wall time", Math.round(u.wall_time_s ?? 0), b.max_wall_time_s, "s"));
}

function renderApproval(run) {
  const pending = run.state === "awaiting_approval" && run.pending_approval;
  $("#approval").hidden = !pending;
  if (!pending) return;
  const plan = pending.plan;
  $("#approval-plan tbody").replaceChildren(...plan.steps.map((s) => h("tr", {},
    h("td", {}, s.id), h("td", {}, s.tool), h("td", {}, s.purpose),
    h("td", {}, JSON.stringify(s.inputs).slice(0, 160)))));
  if ($("#plan-editor").hidden) $("#plan-json").value = JSON.stringify(plan, null, 2);
}

async function answer(body) {
  $("#approval-error").hidden = true;
  try {
    await api(`/api/campaigns/${encodeURIComponent(current.id)}/approval`, { method: "POST", body: JSON.stringify(body) });
    $("#approval").hidden = true;
    $("#plan-editor").hidden = true;
  } catch (err) {
    $("#approval-error").textContent = err.message;
    $("#approval-error").hidden = false;
  }
}
$("#approve").addEventListener("click", () => answer({ approved: true }));
$("#reject").addEventListener("click", () => answer({ approved: false, feedback: $("#approval-feedback").value }));
$("#edit-plan").addEventListener("click", () => { $("#plan-editor").hidden = false; });
$("#approve-edited").addEventListener("click", () => {
  let plan;
  try { plan = JSON.parse($("#plan-json").value); } catch (err) {
    $("#approval-error").textContent = `The plan is not valid JSON: ${err.message}`;
    $("#approval-error").hidden = false;
    return;
  }
  answer({ approved: true, plan });
});

async function control(action) {
  try {
    await api(`/api/campaigns/${encodeURIComponent(current.id)}/${action}`, { method: "POST" });
    if (action === "resume") openRun(current.id); else scheduleRefresh();
  } catch (err) { $("#run-error").textContent = err.message; $("#run-error").hidden = false; }
}
$("#run-stop").addEventListener("click", () => control("stop"));
$("#run-resume").addEventListener("click", () => control("resume"));

const fileUrl = (id, path, download = false) =>
  `/api/runs/${encodeURIComponent(id)}/files/${path.split("/").map(encodeURIComponent).join("/")}${download ? "?download=true" : ""}`;

function renderCandidates(run) {
  const rows = run.candidates.length ? run.candidates.map((c) => h("tr", { "data-candidate": c.id },
    h("td", {}, c.id), h("td", {}, c.formula), h("td", {}, c.spacegroup ?? "—"), h("td", {}, c.method),
    h("td", {}, c.status), h("td", { class: "num" }, fmt(c.e_above_hull_ev_per_atom, 3, true)),
    h("td", { class: "num" }, fmt(c.formation_energy_ev_per_atom)),
    h("td", {}, c.cif ? [
      h("button", { type: "button", class: "view3d", onclick: () => openViewer(run.id, c) }, "3D"), " ",
      h("a", { href: fileUrl(run.id, c.cif, true), download: true }, `CIF (${c.cif_kind})`)] : "—")))
    : [h("tr", {}, h("td", { colspan: 8 }, "No candidates yet."))];
  $("#candidates tbody").replaceChildren(...rows);
}

async function renderReport(run) {
  const box = $("#report");
  const links = [];
  if (run.files["report.html"]) links.push(h("a", { href: fileUrl(run.id, "report.html"), target: "_blank", id: "report-html" }, "Open the full report"));
  if (run.files["report.md"]) links.push(h("a", { href: fileUrl(run.id, "report.md", true), download: true }, "report.md"));
  if (run.files["report.json"]) links.push(h("a", { href: fileUrl(run.id, "report.json", true), download: true }, "report.json"));
  const parts = [h("h3", {}, "Report"), h("p", { class: "row" }, ...links.flatMap((l) => [l, " "]))];
  if (run.files["report.json"]) {
    const r = await api(fileUrl(run.id, "report.json"));
    const evidence = Object.fromEntries((r.evidence || []).map((e) => [e.id, { ...e, url: e.doi ? `https://doi.org/${e.doi}` : null }]));
    parts.push(h("p", { id: "report-summary" }, ...linkify(r.summary || "", evidence)));
    const list = (title, items) => items?.length ? [h("h4", {}, title), h("ul", {}, items.map((x) => h("li", {}, ...linkify(String(x), evidence))))] : [];
    parts.push(...list("Evidence", (r.evidence || []).map((e) => `${e.id} ${e.title || ""}${e.doi ? ` doi:${e.doi}` : ""}`)));
    parts.push(...list("Limitations", r.limitations), ...list("Next steps", r.next_steps));
  }
  box.replaceChildren(...parts);
  box.hidden = false;
}

// ---------------------------------------------------------------- 3D viewer (3Dmol.js)
let viewer = null;

async function openViewer(runId, candidate) {
  const url = fileUrl(runId, candidate.cif);
  const res = await fetch(url);
  if (!res.ok) { alert(`Cannot load ${candidate.cif}: ${res.status}`); return; }
  const cif = await res.text();
  $("#viewer-panel").hidden = false;
  $("#viewer-title").textContent = `${candidate.formula} (${candidate.id}, ${candidate.cif_kind})`;
  $("#viewer-download").href = fileUrl(runId, candidate.cif, true);
  if (!viewer) viewer = window.$3Dmol.createViewer($("#viewer"), { backgroundColor: "white" });
  viewer.resize();
  viewer.clear();
  const model = viewer.addModel(cif, "cif", { doAssembly: true, duplicateAssemblyAtoms: true, normalizeAssembly: true });
  viewer.setStyle({}, { sphere: { scale: 0.3, colorscheme: "Jmol" }, stick: { radius: 0.12, colorscheme: "Jmol" } });
  viewer.addUnitCell(model, { box: { color: "black" } });
  viewer.replicateUnitCell(2, 2, 2, model);
  viewer.zoomTo();
  viewer.render();
  $("#viewer").dataset.atoms = String(model.selectedAtoms({}).length);
  $("#viewer-panel").scrollIntoView({ block: "nearest" });
}
$("#viewer-close").addEventListener("click", () => { $("#viewer-panel").hidden = true; });

window.addEventListener("hashchange", route);
route();
