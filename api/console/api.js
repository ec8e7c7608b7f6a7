// The public API, as any client calls it: JSON requests, the native SSE stream read from a
// fetch body, and uploads through XMLHttpRequest (the one browser API that reports upload
// progress). The key travels as `Authorization: Bearer`; it is kept in sessionStorage, or in
// localStorage when the user asks for it to be remembered.

const KEY = "switchboard.key";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let unauthorized = () => {};

/** Called with the error whenever the API answers 401 (no key, or a wrong one). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export function storedKey() {
  return sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY);
}

export function saveKey(key, remember) {
  forgetKey();
  (remember ? localStorage : sessionStorage).setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const result = new Headers(extra);
  const key = storedKey();
  if (key) result.set("Authorization", `Bearer ${key}`);
  return result;
}

// The OpenAI envelope ({"error": {...}}) or LangGraph's ({"detail": ...}).
async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let code;
  try {
    const body = await response.json();
    const error = body.error ?? body;
    if (typeof error.message === "string") message = error.message;
    else if (typeof error.detail === "string") message = error.detail;
    code = error.code;
  } catch {
    // not JSON: keep the status line
  }
  const error = new ApiError(response.status, message, code);
  if (response.status === 401) unauthorized(error);
  return error;
}

/** `method path` with an optional JSON body; resolves to the parsed JSON (or null). */
export async function request(method, path, body, { signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.headers.set("Content-Type", "application/json");
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204 || response.status === 202) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** POST `body` to an SSE endpoint and yield each event as {event, data, id}, as it arrives. */
export async function* stream(path, body, { signal } = {}) {
  const response = await fetch(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = parseFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (frame) yield frame;
    }
  }
}

function parseFrame(text) {
  let event = "message";
  let id = null;
  const data = [];
  for (const line of text.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (!data.length) return null;
  return { event, id, data: JSON.parse(data.join("\n")) };
}

/** Upload `files` as one multipart request; `progress(sent, total)` follows the bytes out. */
export function upload(files, progress) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/documents");
    headers().forEach((value, name) => xhr.setRequestHeader(name, value));
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) progress(e.loaded, e.total);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "the upload failed (network)")));
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // keep null
      }
      if (xhr.status === 401) {
        const error = new ApiError(401, body?.error?.message ?? "unauthorized");
        unauthorized(error);
        reject(error);
      } else if (body && Array.isArray(body.documents)) {
        resolve(body.documents); // 200, 202, 207, or every file refused: each says why
      } else {
        reject(new ApiError(xhr.status, body?.error?.message ?? `${xhr.status} ${xhr.statusText}`));
      }
    });
    xhr.send(form);
  });
}
