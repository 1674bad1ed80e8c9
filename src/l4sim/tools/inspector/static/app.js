// The l4sim inspector: every view of one recorded run at one instant.
//
// The run's model (built by l4sim.tools.inspector.model) arrives as window.L4SIM_RUN from
// run.js, so the page opens from a static folder as well as from `l4sim inspect`'s server.
// An instant is a record index n: the state after records 0..n, in the order the kernel
// emitted them.  Every view draws from the model's lifetimes and lists; nothing here
// interprets raw records except the event list, which shows them.
"use strict";

(function () {
  const M = window.L4SIM_RUN;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  if (!M || !M.records) {
    $("run-info").textContent = "no run data: run.js is missing or empty";
    return;
  }

  // ------------------------------------------------------------------ lookups
  const N = M.count;
  const T = M.records.map((r) => r[0]);
  const objects = new Map(M.objects.map((o) => [o.kid, o]));
  const threads = new Map(M.threads.map((t) => [t.tid, t]));
  const taskName = (kid) => {
    const o = objects.get(kid);
    return o ? (o.name || `task #${kid}`) : `task #${kid}`;
  };
  const threadTask = (tid) => {
    const th = threads.get(tid);
    return th ? th.task : -1;
  };
  const protoName = (p) => (M.protos[String(p)] || `proto ${p}`);
  const capsBySpace = groupBy(M.caps, (r) => r[0]);
  const memBySpace = groupBy(M.mem, (r) => r[0]);
  const capsByObj = groupBy(M.caps, (r) => r[2]);
  const STATE_COLOURS = {
    "inactive": "#e4e7ec", "ready": "#fdb022", "running": "#12b76a",
    "blocked in receive": "#53b1fd", "blocked in send": "#9e77ed",
    "waiting for its release": "#b2ccff", "out of budget": "#f97066",
    "dead": "#475467", "stopped by a fault": "#d92d20",
  };

  function groupBy(rows, key) {
    const m = new Map();
    for (const r of rows) {
      const k = key(r);
      if (!m.has(k)) m.set(k, []);
      m.get(k).push(r);
    }
    return m;
  }
  const alive = (row, n) => row[row.length - 2] <= n && (row[row.length - 1] === -1 || row[row.length - 1] > n);
  const objAlive = (o, n) => o.created <= n && (o.destroyed === -1 || o.destroyed > n);

  function rightsText(r, memory) {
    const bits = memory ? [["R", 4], ["W", 2], ["X", 1]] : [["R", 4], ["W", 1], ["S", 2], ["D", 8]];
    return bits.map(([l, b]) => (r & b ? l : "-")).join("");
  }
  function fmtTime(ns) {
    return `${(ns / 1e6).toFixed(6)} ms`;
  }
  function objLabel(kid, text) {
    const o = objects.get(kid);
    if (!o) return text;
    return o.name ? `${o.type} #${kid} ${o.name}` : `${o.type} #${kid}`;
  }
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of kids) e.append(c);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function stateAt(th, n) {
    let cur = ["inactive", ""];
    const s = th.states;
    let lo = 0, hi = s.length - 1;
    while (lo <= hi) { // the last change at or before n
      const mid = (lo + hi) >> 1;
      if (s[mid][0] <= n) { cur = [s[mid][1], s[mid][2]]; lo = mid + 1; } else hi = mid - 1;
    }
    return cur;
  }
  function recordText(i) {
    const [t, cpu, kind, tid, args] = M.records[i];
    const parts = Object.keys(args).sort().map((k) => {
      let v = args[k];
      if (kind === "ipc" && k === "proto") return `proto=${v} (${protoName(v)})`;
      if (typeof v === "string" && v.length > 60) v = v.slice(0, 57) + "...";
      return `${k}=${typeof v === "string" ? JSON.stringify(v) : v}`;
    });
    const who = tid >= 0 ? ` thread #${tid}${threads.has(tid) ? " " + threads.get(tid).name : ""}` : "";
    return `#${i}  ${fmtTime(t)}  cpu ${cpu}  ${kind}${who}  ${parts.join(" ")}`;
  }

  // ------------------------------------------------------------------ the instant
  const view = { n: N - 1, sel: null, selKind: "task" };
  const slider = $("slider");
  slider.max = String(N - 1);
  $("event-no").max = String(N - 1);

  function setInstant(n, from) {
    n = Math.max(0, Math.min(N - 1, n | 0));
    view.n = n;
    if (from !== "slider") slider.value = String(n);
    if (from !== "input") $("event-no").value = String(n);
    render();
    saveHash();
  }
  slider.addEventListener("input", () => setInstant(Number(slider.value), "slider"));
  $("event-no").addEventListener("change", () => setInstant(Number($("event-no").value), "input"));
  $("prev").addEventListener("click", () => setInstant(view.n - 1));
  $("next").addEventListener("click", () => setInstant(view.n + 1));
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    if (e.key === "ArrowLeft") setInstant(view.n - 1);
    if (e.key === "ArrowRight") setInstant(view.n + 1);
  });
  const UNITS = { ns: 1, us: 1e3, ms: 1e6, s: 1e9 };
  $("goto-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|ms|s)\s*$/.exec($("goto-time").value);
    if (!m) { $("goto-error").textContent = "give a time with a unit: ns, us, ms or s"; return; }
    $("goto-error").textContent = "";
    gotoTime(Number(m[1]) * UNITS[m[2]]);
  });
  function gotoTime(ns) {
    // the first event at or after ns (the records' times are not sorted: cores run ahead)
    let best = N - 1;
    for (let i = 0; i < N; i++) if (T[i] >= ns) { best = i; break; }
    setInstant(best);
  }
  function saveHash() {
    const h = `#n=${view.n}` + (view.sel !== null ? `&${view.selKind}=${view.sel}` : "");
    if (location.hash !== h) history.replaceState(null, "", h);
  }
  function loadHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    if (p.has("task")) { view.sel = Number(p.get("task")); view.selKind = "task"; }
    if (p.has("obj")) { view.sel = Number(p.get("obj")); view.selKind = "obj"; }
    if (p.has("n")) return Number(p.get("n"));
    return M.live ? M.live.at : N - 1;
  }
  function select(kind, kid) {
    view.selKind = kind;
    view.sel = kid;
    render();
    saveHash();
  }

  // ------------------------------------------------------------------ header
  (function header() {
    const h = M.header || {};
    const what = h.command === "boot" ? `boot ${h.scenario}` :
      h.command === "linux run" ? `linux run ${(h.argv || []).join(" ")}` : M.source;
    const bits = [what];
    if (h.seed !== undefined) bits.push(`seed ${h.seed}`);
    bits.push(`${M.cores} core${M.cores === 1 ? "" : "s"}`, `${N.toLocaleString("en")} records`,
      `ends at ${fmtTime(M.end)}`);
    if (M.live) bits.push(`replayed to event ${M.live.requested}`);
    $("run-info").textContent = bits.join(" · ");
    if (M.warnings.length) $("warnings").textContent = M.warnings.slice(0, 5).join("; ");
  })();

  // ------------------------------------------------------------------ tasks and threads
  function renderTasks(n) {
    const ul = $("tasks");
    ul.replaceChildren();
    const byTask = groupBy(M.threads.filter((th) => th.created <= n), (th) => th.task);
    for (const task of M.tasks) {
      if (task.created > n) continue;
      const gone = task.destroyed !== -1 && task.destroyed <= n;
      if (gone && !$("show-gone").checked) continue;
      const li = el("li", { class: "task" + (gone ? " gone" : "") + (view.selKind === "task" && view.sel === task.kid ? " selected" : ""), "data-kid": task.kid });
      const name = el("span", { class: "name", tabIndex: 0, role: "button" }, `${task.name || "task"} #${task.kid}` + (gone ? " (deleted)" : ""));
      name.addEventListener("click", () => select("task", task.kid));
      name.addEventListener("keydown", (e) => { if (e.key === "Enter") select("task", task.kid); });
      li.append(name);
      const tl = el("ul", { class: "threads" });
      for (const th of byTask.get(task.kid) || []) tl.append(threadItem(th, n));
      li.append(tl);
      ul.append(li);
    }
    const loose = byTask.get(-1) || [];
    if (loose.length) {
      const li = el("li", { class: "task" }, el("span", { class: "name" }, "threads not bound to a task"));
      const tl = el("ul", { class: "threads" });
      for (const th of loose) tl.append(threadItem(th, n));
      li.append(tl);
      ul.append(li);
    }
  }
  function threadItem(th, n) {
    const [state, detail] = stateAt(th, n);
    return el("li", { "data-tid": th.tid, "data-state": state },
      el("span", { class: "state", style: `background:${STATE_COLOURS[state] || "#ccc"}` }),
      `${th.name} #${th.tid}: ${state}${detail ? " " + detail : ""}`);
  }

  $("show-gone").addEventListener("change", () => renderTasks(view.n));

  // ------------------------------------------------------------------ capability graph
  function renderGraph(n) {
    const g = $("capgraph");
    g.replaceChildren();
    const tasks = M.tasks.filter((t) => objAlive(t, n) || (capsBySpace.get(t.kid) || []).some((r) => alive(r, n)));
    const held = new Map(); // object -> rows held at n
    const edges = [];
    for (const t of tasks) {
      for (const r of capsBySpace.get(t.kid) || []) {
        if (!alive(r, n)) continue;
        edges.push(r);
        if (!held.has(r[2])) held.set(r[2], r);
      }
    }
    const objs = [...held.keys()].sort((a, b) => {
      const oa = objects.get(a), ob = objects.get(b);
      const ta = oa ? oa.type : "~", tb = ob ? ob.type : "~";
      return ta < tb ? -1 : ta > tb ? 1 : a - b;
    });
    const ROW = 20, LW = 170, RX = 420, RW = 190;
    const height = Math.max(tasks.length, objs.length) * ROW + 10;
    g.setAttribute("width", RX + RW + 10);
    g.setAttribute("height", height);
    const ty = new Map(tasks.map((t, i) => [t.kid, 5 + i * ROW]));
    const oy = new Map(objs.map((o, i) => [o, 5 + i * ROW]));
    const selTask = view.selKind === "task" ? view.sel : null;
    const selObj = view.selKind === "obj" ? view.sel : null;
    for (const r of edges) {
      const y1 = ty.get(r[0]) + 8, y2 = oy.get(r[2]) + 8;
      const hot = r[0] === selTask || r[2] === selObj;
      const p = svg("path", { d: `M${LW + 5},${y1} C${LW + 120},${y1} ${RX - 120},${y2} ${RX},${y2}`, class: hot ? "hot" : "" });
      p.append(svg("title", {}, `${taskName(r[0])} slot ${r[1]} -> ${objLabel(r[2], r[3])} (${rightsText(r[4])})`));
      g.append(p);
    }
    for (const t of tasks) g.append(node(5, ty.get(t.kid), LW, `${t.name || "task"} #${t.kid}`, "task", t.kid, t.kid === selTask));
    for (const o of objs) {
      const ob = objects.get(o);
      const label = o >= 0 ? objLabel(o, held.get(o)[3]) : held.get(o)[3];
      const isTask = ob && ob.type === "task";
      g.append(node(RX, oy.get(o), RW, label, isTask ? "task" : "obj", o, isTask ? o === selTask : o === selObj));
    }
    // hot edges on top
    for (const p of [...g.querySelectorAll("path.hot")]) g.append(p);
  }
  function node(x, y, w, label, kind, kid, selected) {
    const gn = svg("g", { class: `node ${kind}${selected ? " selected" : ""}`, "data-kid": kid, "data-kind": kind, transform: `translate(${x},${y})` });
    gn.append(svg("rect", { width: w, height: 16, rx: 3 }));
    gn.append(svg("text", { x: 4, y: 12 }, label.length > 30 ? label.slice(0, 29) + "…" : label));
    gn.append(svg("title", {}, label));
    gn.addEventListener("click", () => select(kind === "task" ? "task" : "obj", kid));
    return gn;
  }

  // ------------------------------------------------------------------ the selection
  function renderSelection(n) {
    const capsBody = $("caps").tBodies[0], memBody = $("mem").tBodies[0], holdBody = $("holders").tBodies[0];
    capsBody.replaceChildren(); memBody.replaceChildren(); holdBody.replaceChildren();
    $("live-note").textContent = "";
    $("live-note").className = "";
    if (view.sel === null) {
      $("sel-title").textContent = "no task selected: click one";
      $("caps").hidden = false; $("holders").hidden = true;
      return;
    }
    if (view.selKind === "obj") {
      const o = objects.get(view.sel);
      $("sel-title").textContent = `${o ? objLabel(view.sel, "") : "object #" + view.sel}: held by`;
      $("caps").hidden = true; $("holders").hidden = false; $("mem-title").hidden = true; $("mem").hidden = true;
      for (const r of (capsByObj.get(view.sel) || []).filter((r) => alive(r, n))) {
        holdBody.append(el("tr", {}, el("td", {}, `${taskName(r[0])} #${r[0]}`), el("td", {}, String(r[1])),
          el("td", { class: "rights" }, rightsText(r[4])), el("td", {}, `#${r[5]}`)));
      }
      return;
    }
    const kid = view.sel;
    const t = objects.get(kid);
    const gone = t && t.destroyed !== -1 && t.destroyed <= n;
    $("sel-title").textContent = `task ${taskName(kid)} #${kid}` + (gone ? " (deleted)" : "") + ": capabilities";
    $("caps").hidden = false; $("holders").hidden = true; $("mem-title").hidden = false; $("mem").hidden = false;
    const caps = (capsBySpace.get(kid) || []).filter((r) => alive(r, n)).sort((a, b) => a[1] - b[1]);
    for (const r of caps) {
      const o = objects.get(r[2]);
      const tr = el("tr", { "data-slot": r[1] },
        el("td", { class: "mono" }, String(r[1])),
        el("td", {}, r[2] >= 0 ? objLabel(r[2], r[3]) : r[3]),
        el("td", {}, o ? o.type : ""),
        el("td", { class: "rights" }, rightsText(r[4])),
        el("td", {}, `#${r[5]}`));
      tr.dataset.obj = r[3];
      capsBody.append(tr);
    }
    const mem = (memBySpace.get(kid) || []).filter((r) => alive(r, n)).sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : a[2] - b[2]));
    $("mem-title").textContent = `mappings (${mem.length})`;
    for (const r of mem.slice(0, 500)) {
      const where = r[1] === "io" ? `port 0x${r[2].toString(16)}` : `0x${(r[2] * 4096).toString(16)}`;
      memBody.append(el("tr", {}, el("td", { class: "mono" }, where), el("td", { class: "mono" }, r[3]),
        el("td", { class: "rights" }, rightsText(r[4], r[1] === "mem")), el("td", {}, `#${r[5]}`)));
    }
    if (mem.length > 500) memBody.append(el("tr", {}, el("td", { colSpan: 4 }, `... and ${mem.length - 500} more`)));
    liveCompare(kid, n, caps);
  }
  function liveCompare(kid, n, caps) {
    const L = M.live;
    if (!L || n !== L.at) return;
    const lt = L.tasks.find((t) => t.kid === kid);
    const note = $("live-note");
    const rec = caps.map((r) => `${r[1]} ${r[3]} ${r[4]}`).join("\n");
    const live = lt ? lt.caps.map((c) => `${c[0]} ${c[1]} ${c[2]}`).join("\n") : "";
    if (rec === live) {
      note.textContent = `the replayed kernel holds the same ${caps.length} capabilities here`;
      note.className = "ok";
    } else {
      note.textContent = "the replayed kernel differs from the trace here: " +
        (lt ? lt.caps.map((c) => `${c[0]}:${c[1]}`).join(", ") : "no such task");
      note.className = "bad";
    }
  }

  // ------------------------------------------------------------------ thread timeline
  const legend = $("legend");
  for (const [s, c] of Object.entries(STATE_COLOURS)) {
    legend.append(el("span", {}, el("span", { class: "state", style: `background:${c}` }), s + "  "));
  }
  const TL = { rows: [], x0: 160, rowH: 14 };
  (function prepTimeline() {
    for (const task of [...M.tasks, { kid: -1, name: "" }]) {
      for (const th of M.threads.filter((t) => t.task === task.kid)) TL.rows.push(th);
    }
  })();
  function timelineScale(cv) {
    const w = cv.clientWidth || 800;
    return { w, span: Math.max(1, M.end), px: (w - TL.x0 - 10) / Math.max(1, M.end) };
  }
  function drawTimeline(n) {
    const cv = $("timeline");
    const { w, px } = timelineScale(cv);
    const h = TL.rows.length * TL.rowH + 20;
    const dpr = window.devicePixelRatio || 1;
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
      cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr); cv.style.height = h + "px";
    }
    const c = cv.getContext("2d");
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, w, h);
    c.font = "11px system-ui, sans-serif";
    TL.rows.forEach((th, row) => {
      const y = row * TL.rowH;
      c.fillStyle = "#1d2430";
      const label = `${th.task >= 0 ? taskName(th.task) + " / " : ""}${th.name}`;
      c.fillText(label.length > 26 ? label.slice(0, 25) + "…" : label, 2, y + 11);
      const s = th.states;
      for (let k = 0; k < s.length; k++) {
        const t0 = T[s[k][0]], t1 = k + 1 < s.length ? T[s[k + 1][0]] : M.end;
        const x = TL.x0 + t0 * px, x1 = TL.x0 + Math.max(t0, t1) * px;
        c.fillStyle = STATE_COLOURS[s[k][1]] || "#ccc";
        c.fillRect(x, y + 2, Math.max(1, x1 - x), TL.rowH - 4);
      }
    });
    const cx = TL.x0 + T[n] * px;
    c.strokeStyle = "#b54708"; c.lineWidth = 1.5;
    c.beginPath(); c.moveTo(cx, 0); c.lineTo(cx, h - 16); c.stroke();
    c.fillStyle = "#667085";
    c.fillText("0", TL.x0, h - 4);
    const endLabel = fmtTime(M.end);
    c.fillText(endLabel, w - 10 - c.measureText(endLabel).width, h - 4);
  }
  function chartClick(cv, e) {
    const { px } = timelineScale(cv);
    const x = e.offsetX - TL.x0;
    if (x >= 0) gotoTime(x / px);
  }
  $("timeline").addEventListener("click", (e) => chartClick($("timeline"), e));

  // ------------------------------------------------------------------ IPC sequence diagram
  (function ipcFilters() {
    const tasks = new Set();
    const protos = new Set();
    for (const m of M.ipc) { tasks.add(threadTask(m[2])); tasks.add(threadTask(m[3])); protos.add(m[4]); }
    for (const t of M.tasks) if (tasks.has(t.kid)) $("ipc-task").append(el("option", { value: String(t.kid) }, `${t.name} #${t.kid}`));
    for (const p of [...protos].sort((a, b) => a - b)) $("ipc-proto").append(el("option", { value: String(p) }, `${protoName(p)} (${p})`));
    $("ipc-task").addEventListener("change", render);
    $("ipc-proto").addEventListener("change", render);
  })();
  function renderSequence(n) {
    const g = $("sequence");
    g.replaceChildren();
    const ft = $("ipc-task").value, fp = $("ipc-proto").value;
    const match = (m) => (ft === "" || String(threadTask(m[2])) === ft || String(threadTask(m[3])) === ft)
      && (fp === "" || String(m[4]) === fp);
    const msgs = M.ipc.filter(match);
    // the last 24 messages sent by n and the next 8, greyed
    let cut = 0;
    while (cut < msgs.length && msgs[cut][0] <= n) cut++;
    const shown = msgs.slice(Math.max(0, cut - 24), cut + 8);
    $("ipc-count").textContent = `${cut} of ${msgs.length} messages sent by this instant` + (ft || fp ? " (filtered)" : "");
    const lanes = [];
    for (const m of shown) for (const tid of [m[2], m[3]]) { const k = threadTask(tid); if (!lanes.includes(k)) lanes.push(k); }
    const LX = 120, COL = 140, ROW = 22, TOP = 24;
    const x = (k) => LX + lanes.indexOf(k) * COL;
    g.setAttribute("width", LX + Math.max(1, lanes.length) * COL);
    g.setAttribute("height", TOP + shown.length * ROW + 10);
    lanes.forEach((k) => {
      g.append(svg("text", { x: x(k) - 40, y: 14 }, k >= 0 ? `${taskName(k)} #${k}` : "(no task)"));
      g.append(svg("line", { class: "life", x1: x(k), y1: TOP - 4, x2: x(k), y2: TOP + shown.length * ROW }));
    });
    shown.forEach((m, i) => {
      const y = TOP + i * ROW + 12;
      const future = m[0] > n;
      const current = !future && (i + 1 === shown.length || shown[i + 1][0] > n);
      const a = x(threadTask(m[2])), b = x(threadTask(m[3]));
      const row = svg("g", { class: "row", "data-index": m[0] });
      const cls = `msg${future ? " future" : ""}${current ? " current" : ""}`;
      if (a === b) row.append(svg("path", { class: cls, d: `M${a},${y - 6} h30 v10 h-30` }));
      else {
        row.append(svg("line", { class: cls, x1: a, y1: y, x2: b, y2: y }));
        const d = b > a ? -6 : 6;
        row.append(svg("path", { class: cls, d: `M${b + d},${y - 4} L${b},${y} L${b + d},${y + 4}` }));
      }
      const label = `${protoName(m[4])} ${m[6] || ""}${m[5] ? " label 0x" + Number(m[5]).toString(16) : ""}`;
      row.append(svg("text", { x: Math.min(a, b) + 6, y: y - 3, class: future ? "future" : "" }, label));
      row.append(svg("text", { x: 2, y: y + 3, class: future ? "future" : "" }, `#${m[0]}`));
      row.append(svg("title", {}, `${recordText(m[0])}${m[9] >= 0 ? "\nreceived at #" + m[9] : "\nnot received"}`));
      row.addEventListener("click", () => setInstant(m[0]));
      g.append(row);
    });
  }

  // ------------------------------------------------------------------ page faults
  const faultTasks = [...new Set(M.faults.map((f) => f[3]))];
  const PALETTE = ["#2f6fdf", "#d92d20", "#12b76a", "#f79009", "#7a5af8", "#0e9384", "#c11574", "#475467"];
  function drawFaults(n) {
    const cv = $("faultchart");
    const w = cv.clientWidth || 800, h = 160, dpr = window.devicePixelRatio || 1;
    if (cv.width !== Math.round(w * dpr)) { cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr); cv.style.height = h + "px"; }
    const c = cv.getContext("2d");
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, w, h);
    c.font = "11px system-ui, sans-serif";
    const x0 = TL.x0, px = (w - x0 - 10) / Math.max(1, M.end);
    const per = groupBy(M.faults, (f) => f[3]);
    const most = Math.max(1, ...[...per.values()].map((v) => v.length));
    const y = (k) => h - 16 - (k / most) * (h - 30);
    faultTasks.forEach((task, i) => {
      const fs = per.get(task);
      c.strokeStyle = PALETTE[i % PALETTE.length];
      c.fillStyle = c.strokeStyle;
      c.fillText(`${taskName(task)} #${task}`, 2, 14 + i * 13);
      c.beginPath();
      c.moveTo(x0, y(0));
      fs.forEach((f, k) => { c.lineTo(x0 + f[1] * px, y(k)); c.lineTo(x0 + f[1] * px, y(k + 1)); });
      c.lineTo(x0 + M.end * px, y(fs.length));
      c.stroke();
    });
    c.fillStyle = "#667085";
    c.fillText(`${most}`, x0 - 24, y(most) + 4);
    c.fillText("0", x0 - 12, y(0) + 4);
    const cx = x0 + T[n] * px;
    c.strokeStyle = "#b54708"; c.beginPath(); c.moveTo(cx, 0); c.lineTo(cx, h - 14); c.stroke();
    const body = $("fault-table").tBodies[0];
    body.replaceChildren();
    if (!M.faults.length) body.append(el("tr", {}, el("td", { colSpan: 3, class: "none" }, "no page faults in this run")));
    for (const task of faultTasks) {
      const upto = per.get(task).filter((f) => f[0] <= n);
      const last = upto.length ? `0x${Number(upto[upto.length - 1][4]).toString(16)}` : "";
      body.append(el("tr", { "data-kid": task }, el("td", {}, `${taskName(task)} #${task}`), el("td", {}, String(upto.length)), el("td", { class: "mono" }, last)));
    }
  }
  $("faultchart").addEventListener("click", (e) => chartClick($("faultchart"), e));

  // ------------------------------------------------------------------ screen
  const fbs = [...new Set(M.frames.map((f) => f[2]))];
  const screen = { fb: fbs.length ? fbs[0] : null, n: -1, img: null, w: 0, h: 0 };
  if (fbs.length > 1) {
    const s = $("screen-fb");
    s.hidden = false;
    for (const fb of fbs) s.append(el("option", { value: String(fb) }, `framebuffer ${fb}`));
    s.addEventListener("change", () => { screen.fb = Number(s.value); screen.n = -1; render(); });
  }
  function b64(data) {
    const s = atob(data);
    const a = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
    return a;
  }
  function blit(f) {
    const [, , , sw, sh, x, y, w, h, fmt, data] = f;
    if (!screen.img || sw !== screen.w || sh !== screen.h) {
      screen.w = sw; screen.h = sh;
      screen.img = new ImageData(sw, sh);
      for (let i = 3; i < screen.img.data.length; i += 4) screen.img.data[i] = 255;
    }
    const raw = b64(data), px = screen.img.data;
    for (let row = 0; row < h; row++) {
      for (let col = 0; col < w; col++) {
        const k = row * w + col, at = 4 * ((y + row) * sw + x + col);
        let r, g, b, a = 255;
        switch (fmt) {
          case "rgb888": r = raw[3 * k]; g = raw[3 * k + 1]; b = raw[3 * k + 2]; break;
          case "rgba8888": r = raw[4 * k]; g = raw[4 * k + 1]; b = raw[4 * k + 2]; a = raw[4 * k + 3]; break;
          case "xrgb8888": r = raw[4 * k + 2]; g = raw[4 * k + 1]; b = raw[4 * k]; break;
          case "rgb565": {
            const v = raw[2 * k] | (raw[2 * k + 1] << 8);
            const r5 = v >> 11, g6 = (v >> 5) & 63, b5 = v & 31;
            r = (r5 << 3) | (r5 >> 2); g = (g6 << 2) | (g6 >> 4); b = (b5 << 3) | (b5 >> 2); break;
          }
          default: r = g = b = raw[k];
        }
        px[at] = r; px[at + 1] = g; px[at + 2] = b; px[at + 3] = a;
      }
    }
  }
  function renderScreen(n) {
    const cv = $("screen");
    if (screen.fb === null) { cv.hidden = true; $("no-screen").hidden = false; return; }
    const frames = M.frames.filter((f) => f[2] === screen.fb);
    if (n < screen.n) { screen.img = null; screen.n = -1; } // backwards: compose again
    let last = null;
    for (const f of frames) {
      if (f[0] > n) break;
      last = f;
      if (f[0] > screen.n) blit(f);
    }
    screen.n = n;
    if (!screen.img || last === null) {
      cv.hidden = true; $("no-screen").hidden = false;
      $("no-screen").textContent = "nothing on the screen yet at this instant";
      $("screen-info").textContent = "";
      return;
    }
    $("no-screen").hidden = true; cv.hidden = false;
    cv.width = screen.w; cv.height = screen.h;
    // a small screen is shown magnified, whole pixels (the canvas itself keeps the real size)
    const scale = Math.max(1, Math.floor(480 / Math.max(screen.w, screen.h)));
    cv.style.width = `${screen.w * scale}px`;
    cv.getContext("2d").putImageData(screen.img, 0, 0);
    $("screen-info").textContent = `${screen.w}x${screen.h}, last update at event #${last[0]} (${fmtTime(last[1])})`;
  }

  // ------------------------------------------------------------------ events
  function renderEvents(n) {
    const ol = $("events");
    ol.replaceChildren();
    for (let i = Math.max(0, n - 12); i <= Math.min(N - 1, n + 12); i++) {
      const li = el("li", { class: i === n ? "current" : "", "data-index": i }, recordText(i));
      li.addEventListener("click", () => setInstant(i));
      ol.append(li);
    }
  }

  // ------------------------------------------------------------------ everything at once
  function render() {
    const n = view.n;
    $("time").textContent = `t = ${fmtTime(T[n])}`;
    $("current-record").textContent = recordText(n);
    renderTasks(n);
    renderGraph(n);
    renderSelection(n);
    drawTimeline(n);
    renderSequence(n);
    drawFaults(n);
    renderScreen(n);
    renderEvents(n);
    document.body.dataset.instant = String(n);
  }
  window.addEventListener("resize", () => { drawTimeline(view.n); drawFaults(view.n); });
  const start = loadHash();
  if (view.sel === null && M.tasks.length) {
    // start with the task that holds the most capabilities at the end: usually the root
    let best = null, most = -1;
    for (const t of M.tasks) {
      const k = (capsBySpace.get(t.kid) || []).length;
      if (k > most) { most = k; best = t.kid; }
    }
    view.sel = best;
  }
  setInstant(start);
  // a link to another instant of this page (#n=..&task=..) moves there without a reload
  window.addEventListener("hashchange", () => setInstant(loadHash()));
  document.body.dataset.ready = "1";
})();
