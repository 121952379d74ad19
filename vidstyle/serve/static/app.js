// vidstyle serve: the page over the JSON API (vidstyle/serve/app.py). Plain JavaScript, no libraries.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const PREVIEW_SIDE = 480;          // the server's preview size: a frame drawn here is sent at that size
const PREVIEW_FILE_LIMIT = 50e6;   // bytes: a file the browser cannot show is sent whole up to this

const state = {
  info: null, file: null, kind: null, model: null, playable: false,
  previewSeq: 0, previewTimer: null, pollTimer: null, jobs: new Map(),
};

// --- talking to the server -------------------------------------------------------------------

function withToken(url) {
  return token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : url;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {}, token ? { "X-Vidstyle-Token": token } : {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) throw new Error(await errorText(response.status, () => response.json()));
  return response;
}

async function errorText(status, readJson) {
  try {
    const body = await readJson();
    if (body && body.error) return body.error;
  } catch (ignored) { /* not JSON */ }
  return `the server answered ${status}`;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function formatBytes(n) {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return i === 0 ? `${n} bytes` : `${n.toFixed(1)} ${units[i]}`;
}

function formatSeconds(s) {
  if (s == null) return "";
  if (s < 60) return `${Math.ceil(s)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

// --- the file --------------------------------------------------------------------------------

function pickFile(file) {
  if (!file) return;
  showError("");
  if (state.info && file.size > state.info.max_upload) {
    showError(`${file.name} is ${formatBytes(file.size)}; this server takes files up to ` +
              `${formatBytes(state.info.max_upload)} (--max-upload).`);
    return;
  }
  state.file = file;
  state.kind = file.type.startsWith("image/") ? "photo" : "video";
  state.playable = false;
  const video = $("source-video"), photo = $("source-photo");
  if (video.src) URL.revokeObjectURL(video.src);
  if (photo.src) URL.revokeObjectURL(photo.src);
  video.hidden = photo.hidden = true;
  video.removeAttribute("src");
  photo.removeAttribute("src");
  const url = URL.createObjectURL(file);
  if (state.kind === "photo") {
    photo.onload = () => { state.playable = true; schedulePreview(); };
    photo.onerror = () => { state.playable = false; schedulePreview(); };
    photo.src = url;
    photo.hidden = false;
  } else {
    video.onloadeddata = () => { state.playable = true; video.hidden = false; schedulePreview(); };
    video.onerror = () => { state.playable = false; video.hidden = true; schedulePreview(); };
    video.src = url;
  }
  $("picked-name").textContent = `${file.name} · ${formatBytes(file.size)}`;
  $("picked").hidden = false;
  $("stabilize").disabled = state.kind === "photo";
  updateStart();
  schedulePreview();
}

function setUpDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => pickFile(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pickFile(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); }
  });
  $("source-video").addEventListener("seeked", schedulePreview);
}

// --- the styles ------------------------------------------------------------------------------

async function loadModels() {
  const gallery = $("gallery");
  try {
    const { models } = await (await api("/api/models")).json();
    gallery.textContent = "";
    for (const model of models) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "style";
      button.setAttribute("role", "radio");
      button.setAttribute("aria-checked", "false");
      button.dataset.model = model.name;
      button.title = model.error ? `unusable: ${model.error}` : (model.description || model.name);
      button.disabled = Boolean(model.error);
      const img = document.createElement("img");
      img.src = withToken(model.thumbnail);
      img.alt = "";
      img.loading = "lazy";
      const label = document.createElement("span");
      label.textContent = model.name.replaceAll("_", " ");
      button.append(img, label);
      button.addEventListener("click", () => chooseModel(model.name));
      gallery.append(button);
    }
    if (!models.length) gallery.textContent = "No models found (see `vidstyle models`).";
  } catch (error) {
    gallery.textContent = `The styles could not be loaded: ${error.message}`;
  }
}

function chooseModel(name) {
  state.model = name;
  for (const button of $("gallery").querySelectorAll(".style")) {
    button.setAttribute("aria-checked", String(button.dataset.model === name));
  }
  updateStart();
  schedulePreview();
}

function settings() {
  return {
    strength: $("strength").value,
    preserve_color: $("preserve").checked ? "true" : "false",
    stabilize: $("stabilize").value,
    max_size: $("max-size").value,
  };
}

function setUpControls() {
  for (const id of ["strength", "stabilize"]) {
    const input = $(id), out = $(`${id}-out`);
    const show = () => { out.textContent = Number(input.value).toFixed(2); };
    input.addEventListener("input", show);
    show();
  }
  $("strength").addEventListener("change", schedulePreview);
  $("preserve").addEventListener("change", schedulePreview);
  $("start").addEventListener("click", startJob);
}

function updateStart() {
  $("start").disabled = !(state.file && state.model);
}

// --- the preview -----------------------------------------------------------------------------

function schedulePreview() {
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(runPreview, 200);
}

// A small JPEG of what the page shows (the photo, or the player's current frame), or the file
// itself when the browser cannot show it; null when neither will do.
async function previewSource() {
  const media = state.kind === "photo" ? $("source-photo") : $("source-video");
  if (state.playable) {
    const width = media.naturalWidth || media.videoWidth, height = media.naturalHeight || media.videoHeight;
    const scale = Math.min(1, PREVIEW_SIDE / Math.max(width, height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    canvas.getContext("2d").drawImage(media, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
    if (blob) return { blob, name: "frame.jpg", time: 0 };
  }
  if (state.file.size <= PREVIEW_FILE_LIMIT) {
    return { blob: state.file, name: state.file.name, time: state.kind === "video" ? 1 : 0 };
  }
  return null;
}

async function runPreview() {
  if (!state.file || !state.model) return;
  const seq = ++state.previewSeq;
  const status = $("preview-status"), img = $("preview-img"), caption = $("preview-caption");
  const source = await previewSource();
  if (!source) {
    img.hidden = caption.hidden = true;
    status.textContent = "This browser cannot show this file's format, and it is too large to " +
                         "preview; the whole job will still run.";
    return;
  }
  status.textContent = caption.textContent = "Painting one frame…";
  const form = new FormData();
  form.append("model", state.model);
  for (const [key, value] of Object.entries(settings())) form.append(key, value);
  form.append("time", String(source.time));
  form.append("file", source.blob, source.name);
  const started = performance.now();
  try {
    const blob = await (await api("/api/preview", { method: "POST", body: form })).blob();
    if (seq !== state.previewSeq) return;
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
    img.hidden = false;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    caption.textContent = `One frame in ${state.model.replaceAll("_", " ")}, painted in ${seconds} s.` +
                          (state.kind === "video" && state.playable ? " Move the player to pick another." : "");
    caption.hidden = false;
  } catch (error) {
    if (seq !== state.previewSeq) return;
    img.hidden = caption.hidden = true;
    status.textContent = `No preview: ${error.message}`;
  }
}

// --- starting a job --------------------------------------------------------------------------

function startJob() {
  if (!state.file || !state.model) return;
  showError("");
  const form = new FormData();
  form.append("model", state.model);    // fields first: the server reads them before the file
  for (const [key, value] of Object.entries(settings())) form.append(key, value);
  if (state.kind === "photo") form.set("stabilize", "0");
  form.append("file", state.file, state.file.name);

  const xhr = new XMLHttpRequest();   // fetch cannot report upload progress
  xhr.open("POST", "/api/jobs");
  if (token) xhr.setRequestHeader("X-Vidstyle-Token", token);
  const bar = $("upload-bar"), text = $("upload-text");
  $("upload").hidden = false;
  $("start").disabled = true;
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    bar.value = e.loaded / e.total;
    text.textContent = e.loaded < e.total ? `Uploading ${Math.round(100 * e.loaded / e.total)}%`
                                          : "Checking the file…";
  };
  const finish = () => { $("upload").hidden = true; updateStart(); };
  xhr.onload = async () => {
    finish();
    if (xhr.status === 202) {
      const job = JSON.parse(xhr.responseText);
      renderJob(job);
      pollSoon(300);
    } else {
      showError(await errorText(xhr.status, () => JSON.parse(xhr.responseText)));
    }
  };
  xhr.onerror = () => { finish(); showError("The upload did not reach the server (is it still running?)."); };
  xhr.send(form);
}

// --- the jobs --------------------------------------------------------------------------------

function pollSoon(ms) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(refreshJobs, ms);
}

async function refreshJobs() {
  try {
    const { jobs } = await (await api("/api/jobs")).json();
    const seen = new Set(jobs.map((job) => job.id));
    for (const [id, li] of state.jobs) {
      if (!seen.has(id)) { li.remove(); state.jobs.delete(id); }
    }
    jobs.forEach(renderJob);
    $("no-jobs").hidden = state.jobs.size > 0;
    const running = jobs.find((job) => job.state === "running");
    document.title = running ? `${Math.round(100 * running.progress)}% · vidstyle` : "vidstyle";
    const active = jobs.some((job) => job.state === "queued" || job.state === "running");
    pollSoon(active ? 700 : 2000);
  } catch (error) {
    pollSoon(5000);
  }
}

function jobElement(job) {
  let li = state.jobs.get(job.id);
  if (li) return li;
  li = $("job-template").content.firstElementChild.cloneNode(true);
  li.dataset.job = job.id;
  li.querySelector(".job-name").textContent = job.filename;
  li.querySelector(".job-model").textContent = `${job.model.replaceAll("_", " ")}`;
  li.querySelector(".job-remove").addEventListener("click", () => removeJob(job.id));
  $("jobs").prepend(li);
  state.jobs.set(job.id, li);
  $("no-jobs").hidden = true;
  return li;
}

function jobStats(job) {
  if (job.state === "queued") return "Waiting for the jobs before it.";
  if (job.state === "running") {
    if (!job.frames_done) return job.note || "Starting…";
    const parts = [`${job.frames_done} / ${job.frames_total} frames`];
    if (job.fps) parts.push(`${job.fps.toFixed(1)} frames/s`);
    if (job.eta_s != null) parts.push(`about ${formatSeconds(job.eta_s)} left`);
    return parts.join(" · ");
  }
  if (job.state === "done") {
    if (job.kind === "photo") return "Done.";
    return `Done: ${job.frames_done} frames` + (job.fps ? ` at ${job.fps.toFixed(1)} frames/s.` : ".");
  }
  return job.state === "cancelled" ? "Cancelled." : "";
}

function renderJob(job) {
  const li = jobElement(job);
  li.dataset.state = job.state;
  const badge = li.querySelector(".badge");
  badge.textContent = job.state;
  badge.className = `badge ${job.state}`;
  li.querySelector(".job-bar").value = job.progress;
  li.querySelector(".job-bar").hidden = job.state === "done" || job.state === "failed";
  li.querySelector(".job-stats").textContent = jobStats(job);
  const failed = li.querySelector(".job-error");
  failed.textContent = job.error ? `Failed: ${job.error}` : "";
  failed.hidden = !job.error;
  const active = job.state === "queued" || job.state === "running";
  li.querySelector(".job-remove").textContent = active ? "Cancel" : "Remove";
  if (job.state === "done" && !li.dataset.shown) {
    li.dataset.shown = "1";
    showResult(li, job);
  }
}

function mediaElement(kind, url, isResult) {
  if (kind === "photo") {
    const img = document.createElement("img");
    img.src = withToken(url);
    img.alt = isResult ? "The result" : "The original";
    return img;
  }
  const video = document.createElement("video");
  video.src = withToken(url);
  video.playsInline = true;
  video.preload = "auto";
  if (isResult) video.controls = true; else video.muted = true;   // the result carries the sound
  return video;
}

function note(text) {
  const p = document.createElement("p");
  p.className = "note";
  p.textContent = text;
  return p;
}

// The original follows the result's player: play, pause, seek and speed; drift is corrected.
function syncPlayers(result, original) {
  const align = () => { if (Math.abs(original.currentTime - result.currentTime) > 0.1) original.currentTime = result.currentTime; };
  result.addEventListener("play", () => { align(); original.play().catch(() => {}); });
  result.addEventListener("pause", () => { original.pause(); align(); });
  result.addEventListener("seeked", align);
  result.addEventListener("ratechange", () => { original.playbackRate = result.playbackRate; });
  result.addEventListener("timeupdate", () => { if (!result.paused) align(); });
}

function showResult(li, job) {
  const original = mediaElement(job.kind, job.input, false);
  const result = mediaElement(job.kind, job.result, true);
  // A format the browser cannot play (AVI, ...): ask once for the server's H.264 copy.
  let retried = job.kind !== "video";
  original.addEventListener("error", () => {
    if (!retried) {
      retried = true;
      original.src = withToken(`${job.input}?playable=1`);
    } else {
      original.replaceWith(note("This browser cannot play the original; the result beside it plays."));
    }
  });
  result.addEventListener("error", () => {
    result.replaceWith(note("This browser cannot play the result (odd frame sizes are stored in a " +
                            "format browsers lack); download it to watch it."));
  });
  li.querySelector(".slot-input").append(original);
  li.querySelector(".slot-result").append(result);
  if (job.kind === "video") syncPlayers(result, original);
  li.querySelector(".compare").hidden = false;
  const link = li.querySelector(".download");
  link.href = withToken(job.result);
  li.querySelector(".job-actions").hidden = false;
}

async function removeJob(id) {
  try {
    await api(`/api/jobs/${id}`, { method: "DELETE" });
    const li = state.jobs.get(id);
    if (li) { li.remove(); state.jobs.delete(id); }
    $("no-jobs").hidden = state.jobs.size > 0;
  } catch (error) {
    showError(error.message);
  }
  refreshJobs();
}

// --- start -----------------------------------------------------------------------------------

async function main() {
  setUpDrop();
  setUpControls();
  try {
    state.info = await (await api("/api/info")).json();
    $("stabilize").value = state.info.default_stabilize;
    $("stabilize").dispatchEvent(new Event("input"));
  } catch (error) {
    showError(`The server did not answer: ${error.message}`);
  }
  await loadModels();
  refreshJobs();
}

main();
