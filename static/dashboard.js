// The dashboard's only script: the playground form and live job progress (polling).
"use strict";

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function readFile(input) {
  const file = input && input.files && input.files[0];
  if (!file) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = reject;
    reader.readAsDataURL(file);
  });
}

// Poll a job's status URL and show status, queue position, progress, ETA and outputs.
function followJob(statusUrl, ids) {
  const el = (name) => document.getElementById(ids + "-" + name);
  async function tick() {
    const response = await fetch(statusUrl, { credentials: "same-origin" });
    const job = await response.json();
    el("status").textContent = job.status;
    el("position").textContent = job.status === "queued" ? "· position " + job.queue_position : "";
    el("eta").textContent = job.eta !== null ? "· about " + job.eta.toFixed(1) + " s" : "";
    el("progress").value = job.progress;
    el("error").textContent = job.status === "failed" || job.status === "canceled" ? job.error : "";
    const cancel = document.getElementById(ids + "-cancel");
    if (cancel && job.status !== "queued" && job.status !== "running") cancel.hidden = true;
    if (job.status === "success") {
      el("outputs").innerHTML = "";
      for (const url of job.outputs) {
        const link = document.createElement("a");
        link.href = url;
        link.download = "";
        const img = document.createElement("img");
        img.src = url;
        img.alt = "output";
        link.appendChild(img);
        el("outputs").appendChild(link);
      }
    }
    if (job.status === "queued" || job.status === "running") setTimeout(tick, 500);
  }
  tick();
}

function showFieldsFor(form) {
  const kind = form.elements.kind.value;
  form.querySelectorAll("[data-for]").forEach((node) => {
    node.hidden = !node.dataset.for.split(" ").includes(kind);
  });
}

function fillFromParams(form, params) {
  for (const [name, value] of Object.entries(params)) {
    const field = form.elements[name === "steps" ? "num_inference_steps" : name];
    if (field && field.type !== "file" && value !== null) field.value = value;
  }
}

async function submitPlayground(event) {
  event.preventDefault();
  const form = event.target;
  const kind = form.elements.kind.value;
  const body = { kind };
  for (const field of form.elements) {
    if (!field.name || field.name === "kind" || field.name === "csrfmiddlewaretoken" || field.type === "file") continue;
    if (field.closest("[data-for]") && field.closest("[data-for]").hidden) continue;
    if (field.value !== "") body[field.name] = field.value;
  }
  const init = await readFile(form.elements.init_image);
  if (init) body[kind === "super_resolution" ? "url" : "init_image"] = init;
  const mask = await readFile(form.elements.mask_image);
  if (mask && kind === "inpaint") body.mask_image = mask;

  const result = document.getElementById("result");
  const response = await fetch(form.dataset.runUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  result.hidden = false;
  document.getElementById("result-outputs").innerHTML = "";
  if (answer.status === "error") {
    document.getElementById("result-status").textContent = "error";
    const message = answer.message;
    document.getElementById("result-error").textContent =
      typeof message === "string" ? message : Object.values(message).flat().join(" ");
    return;
  }
  const link = document.getElementById("result-link");
  link.textContent = "#" + answer.id;
  link.href = answer.detail_url;
  followJob(answer.status_url, "result");
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("playground");
  if (form) {
    const stored = sessionStorage.getItem("playground-params");
    if (stored) {
      fillFromParams(form, JSON.parse(stored));
      sessionStorage.removeItem("playground-params");
    }
    showFieldsFor(form);
    form.elements.kind.addEventListener("change", () => showFieldsFor(form));
    form.addEventListener("submit", submitPlayground);
  }
  const job = document.getElementById("job");
  if (job && (job.dataset.status === "queued" || job.dataset.status === "running")) {
    followJob(job.dataset.statusUrl, "job");
  }
  const open = document.getElementById("open-in-playground");
  if (open) {
    open.addEventListener("click", () => {
      sessionStorage.setItem("playground-params", document.getElementById("playground-params").textContent);
    });
  }
});
