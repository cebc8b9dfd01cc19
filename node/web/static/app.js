// craftnet hub: the few things pages do with JavaScript, all against the JSON API.
"use strict";

const API = "/api/v1";

async function api(method, path, body, headers) {
  const sent = Object.assign({ "X-Requested-With": "craftnet" }, headers || {});
  let payload = body;
  if (body !== undefined) {
    sent["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(API + path, {
    method, headers: sent, body: payload, credentials: "same-origin",
  });
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

function say(kind, text, html, boxId) {
  const box = document.getElementById(boxId || "form-messages");
  if (!box) return;
  box.className = (kind === "ok" ? "ok" : "error-box") + (boxId ? " form-messages" : "");
  if (html) { box.innerHTML = html; } else { box.textContent = text; }
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function list(value) {
  return value.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

function loginUrl() {
  return "/login?next=" + encodeURIComponent(window.location.pathname);
}

// -- uploads ----------------------------------------------------------------------------

function uploadFile(file, onProgress) {
  // XMLHttpRequest, not fetch: it reports upload progress.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", API + "/files?name=" + encodeURIComponent(file.name));
    xhr.setRequestHeader("X-Requested-With", "craftnet");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
      if (xhr.status === 201) { resolve(data); return; }
      const error = new Error((data && data.error && data.error.message) || ("upload failed: " + xhr.status));
      error.status = xhr.status;
      reject(error);
    };
    xhr.onerror = () => reject(new Error("the upload was interrupted; your draft is kept, try again"));
    xhr.send(file);
  });
}

// -- drafts: what an artisan typed survives a lost connection, a reload, a login --------

function draftKey(form) { return "craftnet:" + form.dataset.draft; }

function saveDraft(form) {
  const f = form.elements;
  const draft = { fields: {}, steps: [], files: form._files || [] };
  for (const el of f) {
    if (!el.name || el.type === "file" || el.type === "password" || el.name === "idempotency") continue;
    if (el.name === "step") continue;
    if (el.type === "radio") { if (el.checked) draft.fields[el.name] = el.value; continue; }
    if (el.type === "checkbox") continue;
    draft.fields[el.name] = el.value;
  }
  for (const li of form.querySelectorAll("li.step")) {
    draft.steps.push({ text: li.querySelector("textarea").value, media: li._media || [] });
  }
  try { localStorage.setItem(draftKey(form), JSON.stringify(draft)); } catch (e) { /* full or private */ }
}

function loadDraft(form) {
  let draft = null;
  try { draft = JSON.parse(localStorage.getItem(draftKey(form)) || "null"); } catch (e) { draft = null; }
  if (!draft) return;
  for (const [name, value] of Object.entries(draft.fields || {})) {
    const el = form.elements[name];
    if (!el) continue;
    if (el instanceof RadioNodeList) {
      for (const radio of el) radio.checked = radio.value === value;
    } else { el.value = value; }
  }
  (draft.steps || []).forEach((step, i) => {
    let li = form.querySelectorAll("li.step")[i];
    if (!li) li = addStep(form);
    li.querySelector("textarea").value = step.text || "";
    li._media = step.media || [];
    showStepMedia(li);
  });
  form._files = draft.files || [];
  showFiles(form);
}

function clearDraft(form) {
  try { localStorage.removeItem(draftKey(form)); } catch (e) { /* nothing kept */ }
}

// -- the technique's steps, each with its photo -----------------------------------------

function showStepMedia(li) {
  const out = li.querySelector(".uploaded");
  if (!out) return;
  out.innerHTML = (li._media || []).map((m) =>
    '<img class="step-thumb" src="' + API + "/files/" + escapeHtml(m.cid) + '" alt="Photo of this step: ' +
    escapeHtml(m.name) + '"> ' + escapeHtml(m.name)).join(" ");
}

function addStep(form) {
  const listEl = form.querySelector("#step-list");
  const n = listEl.querySelectorAll("li.step").length + 1;
  const li = document.createElement("li");
  li.className = "step";
  li.dataset.step = String(n);
  li.innerHTML =
    '<label for="step-' + n + '">Step ' + n + "</label>" +
    '<textarea id="step-' + n + '" name="step" rows="3" maxlength="4000"></textarea>' +
    '<label for="step-' + n + '-photo" class="photo-label">Photo of step ' + n + " (optional)</label>" +
    '<input id="step-' + n + '-photo" class="step-photo" type="file" accept="image/*" capture="environment">' +
    '<progress class="upload" max="100" value="0" hidden aria-label="Upload of the photo of step ' + n + '"></progress>' +
    '<p class="uploaded hint" aria-live="polite"></p>';
  listEl.appendChild(li);
  wireStep(form, li);
  return li;
}

function wireStep(form, li) {
  const input = li.querySelector(".step-photo");
  input.addEventListener("change", async () => {
    const bar = li.querySelector("progress");
    const out = li.querySelector(".uploaded");
    li._media = [];
    for (const file of Array.from(input.files)) {
      bar.hidden = false;
      out.textContent = "Uploading " + file.name + " ...";
      try {
        const stored = await uploadFile(file, (part) => { bar.value = 100 * part; });
        li._media.push({ cid: stored.cid, name: stored.name });
      } catch (error) {
        out.textContent = error.status === 401 ? "Log in to add photos." : error.message;
        bar.hidden = true;
        return;
      }
    }
    bar.value = 100;
    bar.hidden = true;
    showStepMedia(li);
    saveDraft(form);
  });
}

// -- a design's files, uploaded as soon as they are chosen ------------------------------

function showFiles(form) {
  const out = form.querySelector("#uploaded-files");
  if (!out) return;
  out.innerHTML = (form._files || []).map((f, i) =>
    '<li><span class="file-name">' + escapeHtml(f.name) + '</span> <button type="button" class="linkish" data-remove="' +
    i + '">Remove<span class="visually-hidden"> ' + escapeHtml(f.name) + "</span></button></li>").join("");
  for (const button of out.querySelectorAll("button[data-remove]")) {
    button.addEventListener("click", () => {
      form._files.splice(Number(button.dataset.remove), 1);
      showFiles(form);
      saveDraft(form);
    });
  }
}

function wireFiles(form) {
  const input = form.elements.files;
  if (!input) return;
  input.addEventListener("change", async () => {
    const bar = document.getElementById("upload-progress");
    const chosen = Array.from(input.files);
    form._uploading = true;
    bar.hidden = false;
    try {
      for (let i = 0; i < chosen.length; i++) {
        const stored = await uploadFile(chosen[i], (part) => { bar.value = 100 * (i + part) / chosen.length; });
        form._files = (form._files || []).concat([{ cid: stored.cid, name: stored.name }]);
        showFiles(form);
        saveDraft(form);
      }
      bar.value = 100;
      input.value = "";
    } catch (error) {
      say("error", error.status === 401 ? "Log in first to upload files." : error.message);
    } finally {
      form._uploading = false;
      bar.hidden = true;
    }
  });
}

// -- licences ---------------------------------------------------------------------------

function chosenLicence(form) {
  const checked = form.querySelector("input[name=licence]:checked");
  return checked ? checked.value : "";
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
  try {
    const data = await api("GET", "/licences/check?licence=" + encodeURIComponent(chosenLicence(form)) +
      "&parent=" + encodeURIComponent(parent));
    showLicenceWarnings(data.warnings);
  } catch (error) { say("error", error.message); }
}

// -- publishing -------------------------------------------------------------------------

function bodyOf(form) {
  const f = form.elements;
  const body = { title: f.title.value.trim(), licence: chosenLicence(form) };
  const optional = ["summary", "tradition", "region", "language", "description", "process", "machine"];
  for (const name of optional) {
    if (f[name] && f[name].value.trim()) body[name] = f[name].value.trim();
  }
  for (const name of ["materials", "tools", "tags"]) {
    if (f[name] && f[name].value.trim()) body[name] = list(f[name].value);
  }
  if (form.dataset.type === "technique") {
    body.steps = [];
    for (const li of form.querySelectorAll("li.step")) {
      const text = li.querySelector("textarea").value.trim();
      const media = (li._media || []).map((m) => m.cid);
      if (text) body.steps.push({ text, media });
      else if (media.length) body.steps.push({ text: "(photo)", media });
    }
  }
  if (form.dataset.type === "design") {
    body.files = (form._files || []).map((f) => f.cid);
    if (f.derived_from && f.derived_from.value) body.derived_from = [f.derived_from.value];
  }
  return body;
}

async function publish(form) {
  const type = form.dataset.type;
  const f = form.elements;
  saveDraft(form);
  if (form._uploading) { say("error", "Wait for the files to finish uploading."); return; }
  if (!f.title.value.trim()) { say("error", "Give it a title."); f.title.focus(); return; }
  const body = bodyOf(form);
  if (type === "technique" && body.steps.length === 0) {
    say("error", "Describe at least one step."); form.querySelector("li.step textarea").focus(); return;
  }
  const request = { type, body, confirm_licence: Boolean(f.confirm_licence && f.confirm_licence.checked) };
  if (f.artisan) { request.artisan = f.artisan.value; request.passphrase = f.passphrase.value; }
  try {
    const done = await api("POST", "/records", request, { "Idempotency-Key": f.idempotency.value });
    clearDraft(form);
    form.dataset.published = done.cid;
    // Post/redirect/get: the record's page replaces the form, so Back or Reload cannot send it again.
    window.location.replace("/records/" + encodeURIComponent(done.cid) + "?published=1");
  } catch (error) {
    if (error.code === "licence-conflict") {
      showLicenceWarnings(error.details.warnings || []);
      say("error", "The licence conflicts with the parent design's. Read the warning above; " +
        "change the licence, or tick the box to publish anyway.");
      return;
    }
    if (error.status === 401) {
      say("error", "", 'Your session has ended. <a href="' + escapeHtml(loginUrl()) +
        '">Log in again</a>; what you typed is kept in this browser.');
      return;
    }
    throw error;
  }
}

function guard(handler, boxId) {
  return async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    if (form.dataset.busy === "1" || form.dataset.published) return; // a second Enter: ignored
    form.dataset.busy = "1";
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try { await handler(form); } catch (error) {
      say("error", error.message, undefined, boxId);
    } finally {
      form.dataset.busy = "";
      if (button && !form.dataset.published) button.disabled = false;
    }
  };
}

function formData(form) {
  const out = {};
  for (const el of form.elements) { if (el.name) out[el.name] = el.value; }
  return out;
}

// -- passphrase strength, as the artisan types ------------------------------------------

function wireStrength(input) {
  const hint = document.getElementById(input.getAttribute("aria-describedby"));
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!input.value) return;
      const handle = input.form.elements.handle ? input.form.elements.handle.value : "";
      try {
        const verdict = await api("POST", "/keys/strength", { passphrase: input.value, handle });
        hint.textContent = (verdict.ok ? "Good. " : "Not yet: ") + verdict.hint;
        hint.className = "hint strength-hint " + (verdict.ok ? "good" : "weak");
      } catch (e) { /* the server checks again on submit */ }
    }, 300);
  });
}

// -- search as you type -----------------------------------------------------------------

function wireLiveSearch() {
  const box = document.getElementById("search-results");
  const input = document.getElementById("q");
  if (!box || !input) return;
  let timer = null;
  let latest = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = input.value.trim();
      const ticket = ++latest;
      const params = new URLSearchParams(window.location.search);
      params.delete("offset");
      if (q) params.set("q", q); else params.delete("q");
      const response = await fetch("/search?" + params.toString() + "&fragment=1", { credentials: "same-origin" });
      if (!response.ok || ticket !== latest) return; // an older answer arriving late is dropped
      box.innerHTML = await response.text();
      history.replaceState(null, "", "/search" + (params.toString() ? "?" + params.toString() : ""));
    }, 250);
  });
}

// -- USB bundles for another hub (the operator's page) ------------------------------------

function humanSize(size) {
  if (size < 1000) return size + " bytes";
  const units = ["kB", "MB", "GB", "TB"];
  let value = size;
  for (const unit of units) {
    value /= 1000;
    if (value < 1000 || unit === "TB") return value.toFixed(1) + " " + unit;
  }
  return size + " bytes";
}

function wireBundles() {
  const write = document.getElementById("bundle-write");
  if (write) {
    write.addEventListener("submit", guard(async (form) => {
      const f = form.elements;
      const chosen = form.querySelector("input[name=folder]:checked");
      const request = { for: form.dataset.for, name: f.name.value.trim(), replace: f.replace.checked };
      if (chosen) request.folder = chosen.value;
      if (form.dataset.maxSize) request.max_size = form.dataset.maxSize;
      if (f.hub_passphrase) request.hub_passphrase = f.hub_passphrase.value;
      say("ok", "Writing the bundle ...");
      const done = await api("POST", "/bundles", request);
      say("ok", "", "Wrote " + done.files.map((file) => "<code>" + escapeHtml(file.file) + "</code> (" +
        escapeHtml(humanSize(file.bytes)) + ")").join(", ") + ". Take the stick to the other hub and run " +
        "<code>craftnet import</code> there.");
    }));
  }
  const have = document.getElementById("have-upload");
  if (have) {
    have.addEventListener("submit", guard(async (form) => {
      const file = form.elements.have.files[0];
      if (!file) { say("error", "Choose the have-file first.", undefined, "have-messages"); return; }
      const response = await fetch(API + "/bundles/have", {
        method: "POST", body: file, credentials: "same-origin",
        headers: { "X-Requested-With": "craftnet", "Content-Type": "application/octet-stream" },
      });
      const data = await response.json().catch(() => null);
      if (!response.ok) {
        say("error", (data && data.error && data.error.message) || response.statusText, undefined, "have-messages");
        return;
      }
      window.location.assign("/bundles?for=" + encodeURIComponent(data.hub.did));
    }, "have-messages"));
  }
}

// -- wiring -----------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.publish")) {
    loadDraft(form);
    form.addEventListener("submit", guard(publish));
    form.addEventListener("input", () => saveDraft(form));
    for (const li of form.querySelectorAll("li.step")) wireStep(form, li);
    const more = document.getElementById("add-step");
    if (more) more.addEventListener("click", () => { addStep(form).querySelector("textarea").focus(); });
    wireFiles(form);
    if (form.elements.derived_from) {
      form.elements.derived_from.addEventListener("change", () => checkLicence(form));
      for (const radio of form.querySelectorAll("input[name=licence]")) {
        radio.addEventListener("change", () => checkLicence(form));
      }
    }
  }
  const login = document.getElementById("login");
  if (login) {
    login.addEventListener("submit", guard(async (form) => {
      await api("POST", "/session", {
        handle: form.elements.handle.value.trim(), passphrase: form.elements.passphrase.value,
      });
      window.location.assign(form.dataset.next || "/");
    }));
  }
  const operator = document.getElementById("operator-login");
  if (operator) {
    operator.addEventListener("submit", guard(async (form) => {
      await api("POST", "/session", { token: form.elements.token.value.trim() });
      window.location.assign(form.dataset.next || "/");
    }, "operator-messages"));
  }
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => { await api("DELETE", "/session"); window.location.assign("/"); });
  }
  for (const input of document.querySelectorAll("input.strength")) wireStrength(input);
  const create = document.getElementById("key-create");
  if (create) {
    create.addEventListener("submit", guard(async (form) => {
      const done = await api("POST", "/keys", formData(form));
      say("ok", "", "Made the key of <strong>" + escapeHtml(done.handle) + "</strong>: " +
        escapeHtml(done.did) + '. <a href="/publish">Publish something</a>.');
    }));
  }
  const imp = document.getElementById("key-import");
  if (imp) {
    imp.addEventListener("submit", guard(async (form) => {
      const done = await api("POST", "/keys/import", formData(form));
      say("ok", "Brought the key of " + done.handle + ": " + done.did);
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
  const policy = document.getElementById("policy");
  if (policy) {
    policy.addEventListener("submit", guard(async (form) => {
      const done = await api("PUT", "/policy", { walk_in_keys: form.elements.walk_in_keys.checked });
      say("ok", done.walk_in_keys ? "Walk-in artisans may now add keys." : "Only you add keys now.");
    }));
  }
  wireLiveSearch();
  wireBundles();
});
