// craftnet hub: the few things pages do with JavaScript, all against the JSON API.
"use strict";

const API = "/api/v1";

async function api(method, path, body, extra) {
  const headers = { "X-Requested-With": "craftnet" };
  let payload = body;
  if (body !== undefined && !(body instanceof Blob)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(API + path, Object.assign({
    method, headers, body: payload, credentials: "same-origin",
  }, extra || {}));
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.error && data.error.message) || response.statusText);
    error.status = response.status;
    error.code = data && data.error && data.error.code;
    error.details = data && data.error;
    throw error;
  }
  return data;
}

function say(kind, text, html) {
  const box = document.getElementById("form-messages");
  if (!box) return;
  box.className = kind === "ok" ? "ok" : "error-box";
  if (html) { box.innerHTML = html; } else { box.textContent = text; }
  box.focus && box.setAttribute("tabindex", "-1");
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function list(value) {
  return value.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

function uploadFile(file, onProgress) {
  // XMLHttpRequest, not fetch: it reports upload progress.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", API + "/files?name=" + encodeURIComponent(file.name));
    xhr.setRequestHeader("X-Requested-With", "craftnet");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded / event.total); };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
      if (xhr.status === 201) { resolve(data); return; }
      const error = new Error((data && data.error && data.error.message) || ("upload failed: " + xhr.status));
      error.status = xhr.status;
      reject(error);
    };
    xhr.onerror = () => reject(new Error("the upload was interrupted"));
    xhr.send(file);
  });
}

function showLicenceWarnings(warnings) {
  const box = document.getElementById("licence-warnings");
  const confirmRow = document.getElementById("confirm-row");
  if (!box) return;
  const shown = warnings.filter((w) => w.severity !== "info");
  if (shown.length === 0) {
    box.hidden = true; box.innerHTML = "";
    if (confirmRow) confirmRow.hidden = true;
    return;
  }
  box.hidden = false;
  box.innerHTML = "<h2>Licence warning</h2><ul>" + shown.map((w) =>
    '<li class="' + escapeHtml(w.severity) + '">' + escapeHtml(w.message) + "</li>").join("") + "</ul>";
  if (confirmRow) confirmRow.hidden = !shown.some((w) => w.severity === "error");
}

async function checkLicence(form) {
  const parent = form.elements.derived_from && form.elements.derived_from.value;
  if (!parent) { showLicenceWarnings([]); return; }
  const licence = form.elements.licence.value;
  try {
    const data = await api("GET", "/licences/check?licence=" + encodeURIComponent(licence) +
      "&parent=" + encodeURIComponent(parent));
    showLicenceWarnings(data.warnings);
  } catch (error) { say("error", error.message); }
}

function bodyOf(form) {
  const f = form.elements;
  const body = { title: f.title.value.trim(), licence: f.licence.value };
  const optional = ["summary", "tradition", "region", "language", "description", "process", "machine"];
  for (const name of optional) {
    if (f[name] && f[name].value.trim()) body[name] = f[name].value.trim();
  }
  for (const name of ["materials", "tools", "tags"]) {
    if (f[name] && f[name].value.trim()) body[name] = list(f[name].value);
  }
  if (f.steps) body.steps = f.steps.value.split("\n").map((s) => s.trim()).filter((s) => s);
  if (f.derived_from && f.derived_from.value) body.derived_from = [f.derived_from.value];
  return body;
}

async function publish(form) {
  const type = form.dataset.type;
  const f = form.elements;
  if (!f.title.value.trim()) { say("error", "Give a title."); f.title.focus(); return; }
  const body = bodyOf(form);
  if (type === "design" && f.files.files.length) {
    const bar = document.getElementById("upload-progress");
    bar.hidden = false;
    body.files = [];
    const files = Array.from(f.files.files);
    for (let i = 0; i < files.length; i++) {
      const stored = await uploadFile(files[i], (part) => { bar.value = 100 * (i + part) / files.length; });
      body.files.push(stored.cid);
    }
    bar.value = 100;
  }
  const request = {
    type, body, artisan: f.artisan.value, passphrase: f.passphrase.value,
    confirm_licence: Boolean(f.confirm_licence && f.confirm_licence.checked),
  };
  try {
    const done = await api("POST", "/records", request);
    say("ok", "", 'Published: <a id="published-link" href="/records/' + escapeHtml(done.cid) + '">' +
      escapeHtml(body.title) + "</a>");
  } catch (error) {
    if (error.code === "licence-conflict") {
      showLicenceWarnings(error.details.warnings || []);
      say("error", "The licence conflicts with the parent design's. Read the warning above; " +
        "change the licence, or tick the box to publish anyway.");
      return;
    }
    throw error;
  }
}

function guard(handler) {
  return async (event) => {
    event.preventDefault();
    const button = event.target.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try { await handler(event.target); } catch (error) {
      say("error", error.status === 401 ? "Log in with the hub's API token first." : error.message);
    } finally { if (button) button.disabled = false; }
  };
}

function formData(form) {
  const out = {};
  for (const el of form.elements) { if (el.name) out[el.name] = el.value; }
  return out;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.publish")) {
    form.addEventListener("submit", guard(publish));
    if (form.elements.derived_from) {
      form.elements.derived_from.addEventListener("change", () => checkLicence(form));
      form.elements.licence.addEventListener("change", () => checkLicence(form));
    }
  }
  const login = document.getElementById("login");
  if (login) {
    login.addEventListener("submit", guard(async (form) => {
      await api("POST", "/session", { token: form.elements.token.value.trim() });
      window.location.assign(form.dataset.next || "/");
    }));
  }
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => { await api("DELETE", "/session"); window.location.assign("/"); });
  }
  const create = document.getElementById("key-create");
  if (create) {
    create.addEventListener("submit", guard(async (form) => {
      const done = await api("POST", "/keys", formData(form));
      say("ok", "Created the key of " + done.handle + ": " + done.did);
    }));
  }
  const imp = document.getElementById("key-import");
  if (imp) {
    imp.addEventListener("submit", guard(async (form) => {
      const done = await api("POST", "/keys/import", formData(form));
      say("ok", "Imported the key of " + done.handle + ": " + done.did);
    }));
  }
  const exp = document.getElementById("key-export");
  if (exp) {
    exp.addEventListener("submit", guard(async (form) => {
      const data = formData(form);
      const done = await api("POST", "/keys/" + encodeURIComponent(data.handle) + "/export",
        { passphrase: data.passphrase, export_passphrase: data.export_passphrase });
      document.getElementById("x-out").value = done.key_file;
      say("ok", "Exported. Keep the file and its export passphrase apart.");
    }));
  }
});
