// The chat view: the native stream (`POST /v1/chat/stream`) rendered event by event, the
// conversations list (`POST /threads/search`) and a conversation's messages
// (`GET /threads/{id}/state`). Stop cancels the run (`POST /threads/{t}/runs/{r}/cancel`), so
// the worker stops the backend call; before the run's id is known it aborts the request, which
// the service also treats as a cancellation.

import { ApiError, request, stream } from "./api.js";
import { el, clear, describe } from "./dom.js";

const THREAD = "switchboard.thread";

const $ = (id) => document.getElementById(id);

let current = null; // the thread being shown (null: a new conversation)
let active = null; // the turn being streamed: {runId, threadId, controller, stopping}

export function initChat() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    } else if (event.key === "Escape" && active) {
      event.preventDefault();
      stop();
    }
  });
  $("stop").addEventListener("click", stop);
  $("new-thread").addEventListener("click", () => {
    openThread(null);
    $("composer-input").focus();
  });
}

/** After the key is known: the conversations, and the one that was open before a reload. */
export async function startChat() {
  const saved = localStorage.getItem(THREAD);
  await refreshThreads();
  if (saved) await openThread(saved);
}

export async function refreshThreads() {
  let threads;
  try {
    threads = await request("POST", "/threads/search", { limit: 50 });
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) notice(error);
    return;
  }
  const list = $("thread-list");
  clear(list);
  for (const thread of threads) {
    const title = threadTitle(thread);
    const button = el("button", { type: "button", "data-thread": thread.thread_id }, title);
    button.title = `${title} (${thread.status})`;
    if (thread.thread_id === current) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => openThread(thread.thread_id));
    list.append(el("li", {}, button));
  }
  if (!threads.length) list.append(el("li", { class: "empty" }, "No conversations yet."));
}

function threadTitle(thread) {
  const messages = thread.values?.messages ?? [];
  const first = messages.find((m) => m.role === "user");
  const text = typeof first?.content === "string" ? first.content.trim() : "";
  if (text) return text.length > 60 ? `${text.slice(0, 57)}…` : text;
  return `Conversation ${thread.thread_id.slice(0, 8)}`;
}

function markCurrent() {
  for (const button of $("thread-list").querySelectorAll("button[data-thread]")) {
    if (button.dataset.thread === current) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

/** Show thread `id`'s messages (null: start a new conversation). */
export async function openThread(id) {
  if (active) return; // one turn at a time; stop it first
  current = id;
  if (id) localStorage.setItem(THREAD, id);
  else localStorage.removeItem(THREAD);
  markCurrent();
  const log = $("messages");
  clear(log);
  if (!id) {
    log.append(emptyNote());
    return;
  }
  let state;
  try {
    state = await request("GET", `/threads/${encodeURIComponent(id)}/state`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      current = null;
      localStorage.removeItem(THREAD);
      log.append(emptyNote());
      return;
    }
    notice(error);
    return;
  }
  const values = state.values ?? {};
  const messages = (values.messages ?? []).filter((m) => m.role === "user" || m.role === "assistant");
  let last = null;
  for (const message of messages) {
    if (message.role === "user") log.append(userMessage(message.content));
    else {
      last = new AnswerView();
      last.text.textContent = message.content ?? "";
      last.done();
      log.append(last.root);
    }
  }
  // The thread's state keeps the last turn's outputs: show them on the last answer.
  if (last) {
    if (values.route) last.route({ route: values.route });
    if (values.sources?.length) last.sources({ sources: values.sources });
    if (typeof values.quality === "number") last.quality({ score: values.quality });
  }
  if (!messages.length) log.append(emptyNote());
  log.scrollTop = log.scrollHeight;
}

function emptyNote() {
  return el("p", { class: "empty", id: "messages-empty" }, "Ask something to start a conversation.");
}

function userMessage(text) {
  return el(
    "article",
    { class: "message user", "aria-label": "You said" },
    el("p", { class: "text" }, text),
  );
}

async function send() {
  const input = $("composer-input");
  const text = input.value.trim();
  if (!text || active) return;
  input.value = "";
  $("messages-empty")?.remove();
  const log = $("messages");
  log.append(userMessage(text));
  const answer = new AnswerView();
  log.append(answer.root);
  log.scrollTop = log.scrollHeight;

  const body = { messages: [{ role: "user", content: text }] };
  if (current) body.thread_id = current;
  const route = $("route").value;
  if (route) body.route = route;
  const turn = { runId: null, threadId: current, controller: new AbortController(), stopping: false };
  active = turn;
  busy(true);
  let ended = false;
  try {
    for await (const { event, data } of stream("/v1/chat/stream", body, {
      signal: turn.controller.signal,
    })) {
      if (event === "metadata") {
        turn.runId = data.run_id;
        turn.threadId = data.thread_id;
        if (current !== data.thread_id) {
          current = data.thread_id;
          localStorage.setItem(THREAD, current);
        }
        answer.metadata(data);
      } else if (event === "end" || event === "error") {
        ended = true;
        answer[event](data);
      } else if (typeof answer[event] === "function") {
        answer[event](data);
      }
      if (log.scrollHeight - log.scrollTop - log.clientHeight < 120) log.scrollTop = log.scrollHeight;
    }
    if (!ended) answer.error({ message: "the stream closed before the answer ended" });
  } catch (error) {
    if (turn.stopping && error.name === "AbortError") answer.stopped();
    else answer.error({ message: error.message });
  } finally {
    active = null;
    busy(false);
    await refreshThreads();
  }
}

async function stop() {
  const turn = active;
  if (!turn || turn.stopping) return;
  turn.stopping = true;
  $("stop").disabled = true;
  if (turn.runId && turn.threadId) {
    try {
      const path = `/threads/${encodeURIComponent(turn.threadId)}/runs/${encodeURIComponent(turn.runId)}/cancel`;
      await request("POST", path);
      // The stream ends with the run's `error` (cancelled) event; if it does not come soon,
      // stop listening (which cancels the run too).
      setTimeout(() => active === turn && turn.controller.abort(), 3000);
      return;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return; // it has just finished
    }
  }
  turn.controller.abort();
}

function busy(on) {
  $("send").disabled = on;
  $("stop").disabled = !on;
  $("messages").setAttribute("aria-busy", String(on));
}

function notice(error) {
  const box = $("notice");
  box.textContent = error.message;
  box.hidden = false;
}

const CREW_STEPS = {
  task_started: () => "started its task",
  agent_started: null,
  agent_finished: null,
  task_finished: () => "finished its task",
  task_failed: (d) => `failed: ${d.error ?? "unknown error"}`,
  tool_call: (d) => `calls ${d.tool}`,
  tool_result: (d) => `got ${d.tool}'s result`,
  tool_error: (d) => `${d.tool} failed: ${d.error}`,
  verdict: (d) => (d.approved ? "approved the draft" : `asked for changes: ${d.changes ?? ""}`),
  crew_finished: (d) =>
    `finished (${d.approved ? "approved" : "not approved"}, ${d.revisions ?? 0} revision${d.revisions === 1 ? "" : "s"})`,
};

/** One answer: its header (route, quality, trace, status), crew timeline, text, sources. */
class AnswerView {
  constructor() {
    this.badge = el("span", { class: "badge route", hidden: "" });
    this.score = el("span", { class: "badge quality", hidden: "" });
    this.trace = el("span", { class: "trace", hidden: "" });
    this.state = el("span", { class: "status" }, "Thinking…");
    this.timeline = el("ol", { class: "crew", "aria-label": "Crew progress", hidden: "" });
    this.text = el("div", { class: "text" });
    this.notes = el("div", { class: "notes" });
    this.problem = el("p", { class: "error", role: "alert", hidden: "" });
    this.list = el("ol");
    this.sourcePanel = el(
      "section",
      { class: "sources", "aria-label": "Sources", hidden: "" },
      el("h3", {}, "Sources"),
      this.list,
    );
    this.root = el(
      "article",
      { class: "message assistant streaming", "aria-label": "Switchboard answered" },
      el("header", { class: "meta" }, this.badge, this.score, this.trace, this.state),
      this.timeline,
      this.text,
      this.notes,
      this.problem,
      this.sourcePanel,
    );
    this.tokens = 0;
  }

  metadata(data) {
    this.root.dataset.runId = data.run_id;
    const label = `Trace ${String(data.trace_id ?? "").slice(0, 8)}`;
    clear(this.trace);
    if (data.trace_url) {
      const link = el("a", { href: data.trace_url, target: "_blank", rel: "noopener noreferrer" }, label);
      link.title = `Open the run's trace in Langfuse (${data.trace_id})`;
      this.trace.append(link);
    } else if (data.trace_id) {
      this.trace.append(el("span", { title: `Trace id ${data.trace_id}` }, label));
    }
    this.trace.hidden = !data.trace_id;
    this.state.textContent = "Routing…";
  }

  route(data) {
    this.badge.textContent = data.route;
    this.badge.dataset.route = data.route;
    if (data.reason) this.badge.title = data.reason;
    this.badge.hidden = false;
    if (this.root.classList.contains("streaming")) this.state.textContent = "Answering…";
  }

  sources(data) {
    clear(this.list);
    for (const source of data.sources ?? []) {
      const title = source.title || source.source || source.document_id;
      const section = source.section && source.section !== title ? source.section : null;
      const where = [section, source.page ? `page ${source.page}` : null].filter(Boolean).join(", ");
      const summary = el(
        "summary",
        {},
        el("span", { class: "number" }, `[${source.number ?? this.list.children.length + 1}]`),
        ` ${title}`,
        where ? el("span", { class: "where" }, ` — ${where}`) : "",
        el("span", { class: "score" }, ` score ${Number(source.score).toFixed(2)}`),
      );
      const detail = el("details", { class: "source" }, summary, el("blockquote", {}, source.text ?? ""));
      if (source.graph_path?.length) {
        detail.append(el("p", { class: "path" }, `Via the knowledge graph: ${source.graph_path.join(" → ")}`));
      }
      if (source.document_id) {
        const open = el("button", { type: "button", class: "quiet" }, "Show in documents");
        open.addEventListener("click", () =>
          document.dispatchEvent(new CustomEvent("show-document", { detail: source.document_id })),
        );
        detail.append(open);
      }
      this.list.append(el("li", {}, detail));
    }
    if (data.degraded) this.note(`Documents unavailable: ${data.degraded}`);
    this.sourcePanel.hidden = !this.list.children.length;
  }

  token(data) {
    this.tokens += 1;
    this.text.append(data.text);
    this.root.dataset.tokens = String(this.tokens);
  }

  crew(data) {
    const step = CREW_STEPS[data.type];
    if (step === null) return;
    const says = step ? step(data) : data.type;
    const who = data.agent === "crew" ? "Crew" : describe(data.agent);
    const item = el("li", { "data-agent": data.agent, "data-type": data.type }, el("strong", {}, who), ` ${says}`);
    this.timeline.append(item);
    this.timeline.hidden = false;
    this.state.textContent = data.type === "crew_finished" ? "Answering…" : `${who} working…`;
  }

  quality(data) {
    if (typeof data.score === "number") {
      this.score.textContent = `quality ${data.score.toFixed(2)}`;
      this.score.title = data.detail ? `Judge: ${data.detail}` : "The judge model's score (0–1)";
    } else {
      this.score.textContent = "not scored";
    }
    this.score.hidden = false;
    if (data.retry) this.note("Low score: answering again.");
    if (data.escalate) this.note("Low score: handing the question to the research crew.");
  }

  retry() {
    // The draft so far is withdrawn (a revision, a second attempt or the crew's answer).
    this.text.textContent = "";
    this.tokens = 0;
    this.root.dataset.tokens = "0";
    this.note("Revising the answer…");
  }

  warning(data) {
    this.note(data.message ?? "warning", "warning");
  }

  note(text, kind = "info") {
    this.notes.append(el("p", { class: `note ${kind}` }, text));
  }

  end(data) {
    const answer = data.output?.answer;
    if (!this.text.textContent && typeof answer === "string") this.text.textContent = answer;
    this.done();
  }

  error(data) {
    if (data.type === "cancelled" || data.code === "run_cancelled") {
      this.stopped();
      return;
    }
    this.problem.textContent = data.message ?? "the run failed";
    this.problem.hidden = false;
    this.finish("Failed", "failed");
  }

  stopped() {
    this.finish("Stopped", "stopped");
  }

  done() {
    this.finish("", "done");
  }

  finish(label, outcome) {
    this.state.textContent = label;
    this.root.classList.remove("streaming");
    this.root.dataset.outcome = outcome;
  }
}
