// The documents view: upload (`POST /documents`, multipart, with progress), the list
// (`GET /documents`), each document's status polled while it is processing
// (`GET /documents/{id}`), and delete (`DELETE /documents/{id}`, confirmed by a second press).

import { ApiError, request, upload } from "./api.js";
import { el, clear } from "./dom.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 500;

const documents = new Map(); // id -> record, as the API shows it
let polling = null;

export function initDocuments() {
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
}

export async function refreshDocuments() {
  try {
    const body = await request("GET", "/documents");
    documents.clear();
    for (const record of body.documents) documents.set(record.id, record);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) say(error.message, "error");
    return;
  }
  render();
}

/** Bring document `id` into view and focus its row (from a source in the chat). */
export function showDocument(id) {
  const row = document.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
  if (!row) return;
  row.classList.add("highlight");
  row.scrollIntoView({ block: "nearest" });
  row.querySelector("th")?.focus();
}

async function send() {
  const input = $("upload-files");
  const files = [...input.files];
  if (!files.length) return;
  const bar = $("upload-progress");
  const button = $("upload");
  bar.value = 0;
  bar.hidden = false;
  button.disabled = true;
  say(`Uploading ${files.length} file${files.length === 1 ? "" : "s"}…`);
  try {
    const results = await upload(files, (sent, total) => {
      bar.value = total ? sent / total : 0;
    });
    bar.value = 1;
    const refused = results.filter((r) => !r.document);
    for (const result of results) if (result.document) documents.set(result.document.id, result.document);
    const accepted = results.length - refused.length;
    const problems = refused.map((r) => `${r.filename}: ${r.error?.message ?? r.status}`);
    say(
      [`${accepted} of ${results.length} accepted.`, ...problems].join(" "),
      problems.length ? "error" : "info",
    );
    input.value = "";
    render();
  } catch (error) {
    say(error.message, "error");
  } finally {
    button.disabled = false;
    bar.hidden = true;
  }
}

function say(text, kind = "info") {
  const status = $("upload-status");
  status.textContent = text;
  status.className = kind;
}

function render() {
  const rows = $("document-rows");
  clear(rows);
  const sorted = [...documents.values()].sort((a, b) => b.created_at - a.created_at);
  for (const record of sorted) rows.append(row(record));
  $("documents-empty").hidden = sorted.length > 0;
  $("documents").hidden = sorted.length === 0;
  schedulePoll();
}

function row(record) {
  const title = record.title || record.source || record.id;
  const status = el("span", { class: `status ${record.status}` }, record.status);
  if (record.error) status.title = record.error;
  const remove = el("button", { type: "button", class: "danger", "aria-label": `Delete ${title}` }, "Delete");
  remove.addEventListener("click", () => removeDocument(record, remove, title));
  return el(
    "tr",
    { "data-id": record.id, "data-status": record.status },
    el("th", { scope: "row", tabindex: "-1" }, title),
    el("td", {}, status, record.error ? el("span", { class: "reason" }, ` ${record.error}`) : ""),
    el("td", {}, String(record.chunk_count ?? 0)),
    el("td", {}, size(record.size_bytes)),
    el("td", {}, remove),
  );
}

async function removeDocument(record, button, title) {
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = "Confirm delete";
    button.setAttribute("aria-label", `Confirm deleting ${title}`);
    setTimeout(() => {
      if (button.isConnected && button.dataset.confirm === "yes") {
        delete button.dataset.confirm;
        button.textContent = "Delete";
        button.setAttribute("aria-label", `Delete ${title}`);
      }
    }, 5000);
    return;
  }
  button.disabled = true;
  try {
    await request("DELETE", `/documents/${encodeURIComponent(record.id)}`);
    documents.delete(record.id);
    say(`Deleted ${title}.`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) documents.delete(record.id);
    else say(error.message, "error");
  }
  render();
  $("upload-files").focus();
}

function schedulePoll() {
  if (polling || ![...documents.values()].some((d) => d.status === "processing")) return;
  polling = setTimeout(poll, POLL_MS);
}

async function poll() {
  for (const record of [...documents.values()].filter((d) => d.status === "processing")) {
    try {
      documents.set(record.id, await request("GET", `/documents/${encodeURIComponent(record.id)}`));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) documents.delete(record.id);
      else break;
    }
  }
  polling = null;
  render();
}

function size(bytes) {
  if (typeof bytes !== "number") return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
