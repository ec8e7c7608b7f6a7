// Switchboard's web console: asks for an API key when the service wants one, then shows the
// chat and documents views. Everything it does goes through the public API (see api.js).

import { forgetKey, onUnauthorized, request, saveKey, storedKey } from "./api.js";
import { initChat, refreshThreads, startChat } from "./chat.js";
import { initDocuments, refreshDocuments, showDocument } from "./documents.js";

const $ = (id) => document.getElementById(id);
const VIEWS = { chat: ["tab-chat", "chat-view"], documents: ["tab-documents", "documents-view"] };

let started = false;

function showView(name, { focus = false } = {}) {
  for (const [view, [tab, section]] of Object.entries(VIEWS)) {
    const on = view === name;
    $(tab).setAttribute("aria-pressed", String(on));
    $(section).hidden = !on;
  }
  const hash = name === "chat" ? "" : `#${name}`;
  if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname);
  if (name === "documents" && started) refreshDocuments();
  if (focus) (name === "chat" ? $("composer-input") : $("upload-files")).focus();
}

function askForKey(message = "") {
  const dialog = $("key-dialog");
  $("key-error").textContent = message;
  $("key-input").value = "";
  if (!dialog.open) dialog.showModal();
  $("key-input").focus();
}

// Whether the service takes this browser's key (or needs none): a cheap authenticated read.
async function accepted() {
  try {
    await request("GET", "/v1/models");
    return true;
  } catch (error) {
    if (error.status === 401) return false;
    throw error;
  }
}

async function start() {
  $("change-key").hidden = !storedKey();
  if (started) {
    await Promise.all([refreshThreads(), refreshDocuments()]);
    return;
  }
  started = true;
  await startChat();
  if (location.hash === "#documents") refreshDocuments();
}

async function boot() {
  initChat();
  initDocuments();
  $("tab-chat").addEventListener("click", () => showView("chat", { focus: true }));
  $("tab-documents").addEventListener("click", () => showView("documents", { focus: true }));
  $("change-key").addEventListener("click", () => askForKey());
  document.addEventListener("show-document", (event) => {
    showView("documents");
    refreshDocuments().then(() => showDocument(event.detail));
  });
  onUnauthorized(() => {
    if (!started) return; // the key prompt's own check says why
    if (storedKey()) forgetKey();
    askForKey("The service refused the key: enter a valid one.");
  });

  const dialog = $("key-dialog");
  dialog.addEventListener("cancel", (event) => {
    if (!storedKey()) event.preventDefault(); // nothing works without one
  });
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    saveKey(key, $("key-remember").checked);
    $("key-submit").disabled = true;
    try {
      if (await accepted()) {
        dialog.close();
        await start();
      } else {
        forgetKey();
        askForKey("That key was not accepted.");
      }
    } catch (error) {
      $("key-error").textContent = error.message;
    } finally {
      $("key-submit").disabled = false;
    }
  });

  showView(location.hash === "#documents" ? "documents" : "chat");
  try {
    if (await accepted()) await start();
    else askForKey(storedKey() ? "The service refused the saved key." : "");
  } catch (error) {
    const box = $("notice");
    box.textContent = `The service cannot be reached: ${error.message}`;
    box.hidden = false;
  }
}

boot();
