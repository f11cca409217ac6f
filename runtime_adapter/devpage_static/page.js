// The dev sandbox's page: one EventSource, four panels. Plain JavaScript, no build.
"use strict";

const $ = (id) => document.getElementById(id);
const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString();
const text = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));

let contextId = crypto.randomUUID ? crypto.randomUUID() : String(Date.now());
let lastError = null; // the sample_error of the last beat, to mark raised / cleared
const totals = { calls: 0, failed: 0, input: 0, output: 0, seconds: 0 };
const tasks = new Map(); // taskId or contextId+time -> its element in the chat

function showState(s) {
  const status = $("status");
  status.textContent = s.status;
  status.className = "badge " + s.status;
  const wedged = s.runtime_state === "wedged";
  $("runtime-state").textContent = "runtime_state " + (s.runtime_state || "\"\"");
  $("runtime-state").className = "badge " + (wedged ? "wedged" : "subtle");
  $("ws-id").textContent = s.workspace_id;
  $("ws-url").textContent = text(s.url);
  $("ws-delivery").textContent = text(s.delivery_mode);
  $("ws-model").textContent = text(s.provider) + " / " + text(s.model);
  $("ws-active").textContent = s.active_tasks + (s.current_task ? " — " + s.current_task : "");
  $("ws-uptime").textContent = s.uptime_seconds + " s";
  $("ws-beat").textContent = s.last_heartbeat_at ? new Date(s.last_heartbeat_at).toLocaleTimeString() : "—";
  const error = $("ws-error");
  error.hidden = !s.sample_error;
  error.textContent = s.sample_error || "";
  $("chat-route").textContent = s.delivery_mode === "poll"
    ? "through the platform's queue (poll)" : "at the advertised URL (push)";
}

function addTimeline(html, className) {
  const item = document.createElement("li");
  if (className) item.className = className;
  item.innerHTML = html;
  const list = $("timeline");
  list.prepend(item);
  while (list.children.length > 400) list.lastChild.remove();
}

function escape(value) {
  const span = document.createElement("span");
  span.textContent = value;
  return span.innerHTML;
}

function showBeat(b) {
  const head = `<span class="t">${clock(b.at)}</span>${b.kind} → ${b.status || "no answer"}`;
  let line = head;
  let cls = b.status >= 200 && b.status < 300 ? "" : "failedbeat";
  const error = b.sample_error || "";
  if (error && error !== lastError) {
    line += ` <span class="raised">sample_error ${escape(error)}</span>`;
    cls = "raised-row";
  } else if (!error && lastError) {
    line += ` <span class="cleared">cleared (was ${escape(lastError.split(":")[0])})</span>`;
  } else if (error) {
    line += ` <span class="muted">(${escape(b.error_kind || "error")} still)</span>`;
  }
  if (b.kind === "heartbeat" || b.kind === "register") lastError = error || null;
  addTimeline(line, cls);
}

function showFault(f) {
  addTimeline(`<span class="t">${clock(f.at)}</span><span class="fault">fault: ${escape(f.text)}</span>`);
}

function showCall(c) {
  const row = document.createElement("tr");
  const bad = c.outcome !== "ok";
  const cells = [
    clock(c.started), c.model || "—", c.status || "—", c.outcome,
    c.input_tokens ?? "—", c.output_tokens ?? "—",
    c.first_byte === null || c.first_byte === undefined ? "—" : (c.first_byte * 1000).toFixed(0) + " ms",
    (c.seconds || 0).toFixed(2) + " s",
  ];
  cells.forEach((value, index) => {
    const cell = document.createElement("td");
    cell.textContent = value;
    if (bad && index === 3) cell.className = "bad";
    row.append(cell);
  });
  $("calls").prepend(row);
  while ($("calls").children.length > 200) $("calls").lastChild.remove();
  totals.calls += 1;
  totals.failed += bad ? 1 : 0;
  totals.input += c.input_tokens || 0;
  totals.output += c.output_tokens || 0;
  totals.seconds += c.seconds || 0;
  $("calls-count").textContent = totals.calls + " calls";
  $("calls-failed").textContent = totals.failed ? totals.failed + " not ok" : "";
  $("tokens-in").textContent = totals.input;
  $("tokens-out").textContent = totals.output;
  $("calls-seconds").textContent = totals.seconds.toFixed(1) + " s";
}

function bubble(kind, content) {
  const item = document.createElement("div");
  item.className = "msg " + kind;
  item.textContent = content;
  $("messages").append(item);
  $("messages").scrollTop = $("messages").scrollHeight;
  return item;
}

function showTask(t) {
  if (t.state === "sending" || (t.state === "queued" && t.text)) {
    bubble("user", t.text);
  }
  const key = t.messageId;
  let status = tasks.get(key);
  if (!status) {
    status = document.createElement("div");
    status.className = "task-state";
    $("messages").append(status);
    tasks.set(key, status);
  }
  status.dataset.state = t.state;
  status.textContent = "task " + (t.taskId ? t.taskId.slice(0, 8) + " " : "") + t.state
    + (t.progress ? " — " + t.progress : "");
  if (t.answer !== undefined) {
    const reply = bubble(t.state === "completed" ? "agent answer" : "agent failed", t.answer);
    reply.dataset.context = t.contextId;
  }
  $("messages").scrollTop = $("messages").scrollHeight;
}

function connect() {
  const source = new EventSource("/events");
  source.onopen = () => { $("conn").textContent = "live"; $("conn").className = "pill live"; };
  source.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "pill"; };
  source.addEventListener("state", (e) => showState(JSON.parse(e.data)));
  source.addEventListener("beat", (e) => showBeat(JSON.parse(e.data)));
  source.addEventListener("llm", (e) => showCall(JSON.parse(e.data)));
  source.addEventListener("task", (e) => showTask(JSON.parse(e.data)));
  source.addEventListener("fault", (e) => showFault(JSON.parse(e.data)));
  // a reconnect replays everything: start the panels afresh
  source.addEventListener("open", () => {
    $("timeline").replaceChildren(); $("calls").replaceChildren(); $("messages").replaceChildren();
    tasks.clear(); lastError = null;
    Object.assign(totals, { calls: 0, failed: 0, input: 0, output: 0, seconds: 0 });
  });
}

async function post(path, body) {
  const answer = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await answer.json();
  if (!answer.ok) throw new Error(data.error || answer.statusText);
  return data;
}

$("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("chat-input");
  const said = input.value.trim();
  if (!said) return;
  input.value = "";
  try {
    await post("/api/send", { text: said, contextId });
  } catch (error) {
    bubble("agent failed", "not sent: " + error.message);
  }
});

$("chat-new").addEventListener("click", () => {
  contextId = crypto.randomUUID ? crypto.randomUUID() : String(Date.now());
  $("context-id").textContent = contextId;
  bubble("agent", "— a new conversation —");
});

document.querySelectorAll(".faults button").forEach((button) => {
  button.addEventListener("click", async () => {
    try {
      await post("/api/fault", { kind: button.dataset.kind, seconds: Number($("outage-seconds").value) });
    } catch (error) {
      addTimeline(`<span class="fault">fault refused: ${escape(error.message)}</span>`);
    }
  });
});

$("context-id").textContent = contextId;
connect();
