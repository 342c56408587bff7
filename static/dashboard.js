// The dashboard's only script: the playground form, live job progress (its event stream) and the usage chart.
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

function button(label, className, onClick) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = "small " + className;
  node.textContent = label;
  node.addEventListener("click", onClick);
  return node;
}

// The playground's operations, from the server's registry of kinds: where each one's image goes, whether
// it takes a mask or control images, and its API path.
const FORMS = (() => {
  const data = document.getElementById("playground-forms");
  return data ? JSON.parse(data.textContent) : {};
})();

// One output with its actions: download, copy seed and, in the playground, reuse it in the form.
function outputFigure(url, seed, index, job) {
  const figure = document.createElement("figure");
  const link = document.createElement("a");
  link.href = url;
  const img = document.createElement("img");
  img.src = url;
  img.alt = "output " + index;
  link.appendChild(img);
  const caption = document.createElement("figcaption");
  const download = document.createElement("a");
  download.className = "button small download";
  download.href = url;
  download.download = "";
  download.textContent = "Download";
  caption.appendChild(download);
  const seeded = seed !== undefined && seed !== null && job.seeded;  // a seed that made this image
  if (seeded) {
    caption.appendChild(button("Copy seed " + seed, "copy-seed", () => navigator.clipboard.writeText(String(seed))));
  }
  const form = document.getElementById("playground");
  if (form) {
    if (seeded) {
      caption.appendChild(button("Reuse seed", "reuse-seed", () => { form.elements.seed.value = seed; }));
    }
    for (const operation of Object.keys(FORMS).filter((name) => FORMS[name].image)) {
      caption.appendChild(button("Send to " + operation, "send-to-" + operation, () => {
        form.elements.operation.value = operation;
        form.elements.init_image.value = "";
        form.elements.init_image_url.value = url;
        // as if typed: the mask painter and the outpaint preview load the image from it
        form.elements.init_image_url.dispatchEvent(new Event("change"));
        showFieldsFor(form);
        form.scrollIntoView({ behavior: "smooth" });
      }));
    }
  }
  figure.append(link, caption);
  return figure;
}

// Follow a job: its events stream (Server-Sent Events) while it is queued or running, or, where the server
// streams none, its status URL polled. Shows status, queue position, progress, ETA, a live preview, outputs.
function followJob(urls, ids) {
  const el = (name) => document.getElementById(ids + "-" + name);
  let job = {};
  function show(change) {
    job = { ...job, ...change };
    // after the last step: what the worker does before the images are there (decoding, saving)
    const phase = job.status === "running" && job.phase && job.phase !== "denoising" ? " · " + job.phase : "";
    el("status").textContent = job.status + phase;
    el("position").textContent = job.status === "queued" ? "· position " + job.queue_position : "";
    el("eta").textContent = job.eta !== null && job.eta !== undefined ? "· about " + job.eta.toFixed(1) + " s" : "";
    el("progress").value = job.progress;
    el("error").textContent = job.status === "failed" || job.status === "canceled" ? job.error : "";
    const cancel = document.getElementById(ids + "-cancel");
    if (cancel && job.status !== "queued" && job.status !== "running") cancel.hidden = true;
    if (job.status === "running" && job.preview) {
      let preview = document.getElementById(ids + "-preview");
      if (!preview) {
        el("outputs").innerHTML = "";
        preview = document.createElement("img");
        preview.id = ids + "-preview";
        preview.className = "preview";
        preview.alt = "preview of the image forming";
        el("outputs").appendChild(preview);
      }
      if (preview.getAttribute("src") !== job.preview) preview.src = job.preview;
    }
    if (job.status === "success") {
      el("outputs").innerHTML = "";
      job.outputs.forEach((url, index) => el("outputs").appendChild(outputFigure(url, job.seeds[index], index, job)));
      (job.hints || []).forEach((url, index) => el("outputs").appendChild(hintFigure(url, index)));
      const details = el("details");
      if (details) {
        const seeds = job.seeded ? "seed " + job.seeds.join(", ") + " · " : "";
        const size = job.size[0] ? job.size[0] + "×" + job.size[1] + " · " : "";
        details.textContent = seeds + size + (job.generation_time || 0).toFixed(2) + " s";
      }
    }
  }
  const unfinished = () => job.status === "queued" || job.status === "running";
  async function poll() {
    const response = await fetch(urls.status, { credentials: "same-origin" });
    show(await response.json());
    if (unfinished()) setTimeout(poll, 500);
  }
  const stream = new EventSource(urls.events);
  stream.addEventListener("status", (event) => {
    show(JSON.parse(event.data));
    if (!unfinished()) stream.close();
  });
  stream.onerror = () => {  // no stream here (a WSGI server), or it broke: poll instead
    stream.close();
    if (!job.status || unfinished()) poll();
  };
}

// A control image as a ControlNet saw it (after auto_hint), beside the outputs.
function hintFigure(url, index) {
  const figure = document.createElement("figure");
  figure.className = "hint";
  const img = document.createElement("img");
  img.src = url;
  img.alt = "control hint " + index;
  const caption = document.createElement("figcaption");
  caption.textContent = "Control hint " + (index + 1);
  figure.append(img, caption);
  return figure;
}

// The mask painter: strokes over the uploaded image, kept in the image's own pixels, so that the mask it
// makes (white = repaint, on black) has the image's size. Brush and eraser, a size, undo and clear.
const painter = {
  strokes: [],
  erasing: false,

  setup(form) {
    this.canvas = document.getElementById("paint-canvas");
    this.image = document.getElementById("paint-image");
    if (!this.canvas) return;
    this.form = form;
    this.size = document.getElementById("paint-size");
    form.elements.init_image.addEventListener("change", () => this.load());
    form.elements.init_image_url.addEventListener("change", () => this.load());
    this.image.addEventListener("load", () => {
      this.canvas.width = this.image.naturalWidth;
      this.canvas.height = this.image.naturalHeight;
      this.strokes = [];
      this.draw();
      drawOutpaintPreview(form, this.image);
    });
    let current = null;
    this.canvas.addEventListener("pointerdown", (event) => {
      this.canvas.setPointerCapture(event.pointerId);
      const scale = this.canvas.width / this.canvas.getBoundingClientRect().width;
      current = { erase: this.erasing, size: Number(this.size.value) * scale, points: [this.point(event)] };
      this.strokes.push(current);
      this.draw();
    });
    this.canvas.addEventListener("pointermove", (event) => {
      if (!current) return;
      current.points.push(this.point(event));
      this.draw();
    });
    for (const end of ["pointerup", "pointercancel"]) this.canvas.addEventListener(end, () => { current = null; });
    const brush = document.getElementById("paint-brush");
    const eraser = document.getElementById("paint-eraser");
    const choose = (erasing) => {
      this.erasing = erasing;
      brush.setAttribute("aria-pressed", String(!erasing));
      eraser.setAttribute("aria-pressed", String(erasing));
    };
    brush.addEventListener("click", () => choose(false));
    eraser.addEventListener("click", () => choose(true));
    document.getElementById("paint-undo").addEventListener("click", () => { this.strokes.pop(); this.draw(); });
    document.getElementById("paint-clear").addEventListener("click", () => { this.strokes = []; this.draw(); });
  },

  // the form's image (its file, else its URL) under the canvas
  async load() {
    const source = (await readFile(this.form.elements.init_image)) || this.form.elements.init_image_url.value;
    if (source) this.image.src = source;
  },

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * this.canvas.width / box.width, (event.clientY - box.top) * this.canvas.height / box.height];
  },

  // the strokes on `context`: brush strokes in `paint`; eraser strokes in `rubber`, or cut out when null
  strokesOn(context, paint, rubber) {
    for (const stroke of this.strokes) {
      context.globalCompositeOperation = stroke.erase && rubber === null ? "destination-out" : "source-over";
      context.strokeStyle = context.fillStyle = stroke.erase ? rubber || "#000" : paint;
      context.lineWidth = stroke.size;
      context.lineCap = context.lineJoin = "round";
      context.beginPath();
      const [first, ...rest] = stroke.points;
      if (rest.length === 0) {
        context.arc(first[0], first[1], stroke.size / 2, 0, 2 * Math.PI);
        context.fill();
        continue;
      }
      context.moveTo(first[0], first[1]);
      for (const [x, y] of rest) context.lineTo(x, y);
      context.stroke();
    }
    context.globalCompositeOperation = "source-over";
  },

  draw() {
    const context = this.canvas.getContext("2d");
    context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.strokesOn(context, "rgba(255, 60, 60, 0.6)", null);
  },

  // the painted mask as a PNG data URL (null when nothing is painted)
  mask() {
    if (!this.canvas || this.strokes.length === 0) return null;
    const mask = document.createElement("canvas");
    mask.width = this.canvas.width;
    mask.height = this.canvas.height;
    const context = mask.getContext("2d");
    context.fillStyle = "#000";
    context.fillRect(0, 0, mask.width, mask.height);
    this.strokesOn(context, "#fff", "#000");
    return mask.toDataURL("image/png");
  },
};

// Outpaint: the new canvas (width x height) with the image centred in it, scaled down when it does not
// fit, as the worker places it; the dashed line is where the repainted seam starts.
function drawOutpaintPreview(form, image) {
  const preview = document.getElementById("outpaint-preview");
  if (!preview) return;
  const width = Number(form.elements.width.value) || 512;
  const height = Number(form.elements.height.value) || 512;
  const overlap = Number(form.elements.overlap_width.value) || 0;
  preview.width = width;
  preview.height = height;
  const context = preview.getContext("2d");
  context.fillStyle = "#ddd";
  context.fillRect(0, 0, width, height);
  if (!image || !image.naturalWidth) return;
  const scale = Math.min(1, width / image.naturalWidth, height / image.naturalHeight);
  const w = Math.round(image.naturalWidth * scale);
  const h = Math.round(image.naturalHeight * scale);
  const left = Math.floor((width - w) / 2);
  const top = Math.floor((height - h) / 2);
  context.drawImage(image, left, top, w, h);
  context.setLineDash([6, 4]);
  context.strokeStyle = "#c00";
  context.strokeRect(left + overlap, top + overlap, Math.max(0, w - 2 * overlap), Math.max(0, h - 2 * overlap));
}

// The same request as the API takes it (the v6 paths honour the model fields), with a placeholder key
// and inline images shortened.
function curlFor(operation, body) {
  const path = FORMS[operation].path;
  const sent = { key: "YOUR_KEY" };
  for (const [name, value] of Object.entries(body)) {
    if (name === "operation") continue;
    sent[name] = typeof value === "string" && value.startsWith("data:") ? "<base64 image>" : value;
  }
  const json = JSON.stringify(sent).replaceAll("'", "'\\''");
  return "curl -s -X POST " + location.origin + path + " -H 'Content-Type: application/json' \\\n  -d '" + json + "'";
}

function showFieldsFor(form) {
  const operation = form.elements.operation.value;
  form.querySelectorAll("[data-for]").forEach((node) => {
    node.hidden = !node.dataset.for.split(" ").includes(operation);
  });
}

// A control of the form for `name` that the current operation shows (two may name a field alike).
function visibleField(form, name) {
  const operation = form.elements.operation.value;
  return Array.from(form.querySelectorAll("[name='" + name + "']")).find((field) => {
    const block = field.closest("[data-for]");
    return !block || block.dataset.for.split(" ").includes(operation);
  });
}

// A few-step model chosen (its option carries its own sampling; a LoRA's before the checkpoint's): its steps
// and guidance into the form, its sampling said; back to the usual ones when none is chosen.
function applyFastModel(form) {
  const chosen = ["lora_model", "model_id"]
    .map((name) => visibleField(form, name))
    .map((select) => select && select.selectedOptions[0])
    .find((option) => option && option.dataset.sampling);
  const note = document.getElementById("fast-model");
  const steps = visibleField(form, "num_inference_steps");
  const guidance = visibleField(form, "guidance_scale");
  if (chosen) {
    if (steps && chosen.dataset.steps) steps.value = chosen.dataset.steps;
    if (guidance && chosen.dataset.guidance) guidance.value = chosen.dataset.guidance;
    note.textContent = "A fast model: " + chosen.dataset.sampling + ".";
  } else if (note.textContent) {
    if (steps) steps.value = steps.defaultValue;
    if (guidance) guidance.value = guidance.defaultValue;
    note.textContent = "";
  }
}

// "Run again": the job's request fields into the form (a value a select lacks, such as two LoRAs, is
// added as an option), and its stored input images into the file inputs.
async function fillFromJob(form, saved) {
  form.elements.operation.value = saved.operation;
  showFieldsFor(form);
  for (const [name, value] of Object.entries(saved.fields)) {
    const field = visibleField(form, name);
    if (!field || field.type === "file") continue;
    if (field.tagName === "SELECT" && !Array.from(field.options).some((option) => option.value === String(value))) {
      field.add(new Option(String(value), String(value)));
    }
    field.value = value;
  }
  for (const [name, url] of Object.entries(saved.inputs)) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) continue;
    const files = new DataTransfer();
    files.items.add(new File([await response.blob()], name + ".png", { type: "image/png" }));
    form.elements[name].files = files.files;
    if (name === "init_image") {
      form.elements.init_image_url.value = "";
      painter.load();
    }
  }
  const advanced = document.getElementById("advanced");
  advanced.open = Array.from(advanced.querySelectorAll("select, input")).some((field) =>
    field.tagName === "SELECT" ? field.selectedIndex !== 0 : field.value !== "");
  form.dataset.filled = "true";
}

async function submitPlayground(event) {
  event.preventDefault();
  const form = event.target;
  const operation = form.elements.operation.value;
  const body = { operation };
  for (const field of form.elements) {
    if (!field.name || field.name === "operation" || field.name === "csrfmiddlewaretoken" || field.type === "file") continue;
    if (field.closest("[data-for]") && field.closest("[data-for]").hidden) continue;
    if (field.closest("#advanced") && (field.tagName === "SELECT" ? field.selectedIndex === 0 : field.value === "")) continue;
    if (field.value !== "") body[field.name] = field.value;
  }
  const spec = FORMS[operation];
  delete body.init_image_url;
  const init = (await readFile(form.elements.init_image)) || form.elements.init_image_url.value;
  if (init && spec.image) body[spec.image_field] = init;  // init_image, or what the operation calls it
  const mask = painter.mask() || (await readFile(form.elements.mask_image));
  if (mask && spec.mask) body.mask_image = mask;
  const control = await readFile(form.elements.control_image);
  if (control && spec.control) body.control_image = control;

  const result = document.getElementById("result");
  for (const name of ["status", "error", "details", "outputs", "position", "eta"]) {
    document.getElementById("result-" + name).textContent = "";
  }
  document.getElementById("result-status").textContent = "sending";
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
  document.getElementById("result-curl").textContent = curlFor(operation, body);
  const link = document.getElementById("result-link");
  link.textContent = "#" + answer.id;
  link.href = answer.detail_url;
  followJob({ status: answer.status_url, events: answer.events_url }, "result");
}

// The Train page: a training's stage, step, loss (a chart), ETA and samples as they come. Its event stream
// says when something changed; its status (the training API's fine_tune_status) says what.
function followTraining(urls) {
  const el = (name) => document.getElementById("training-" + name);
  el("samples").innerHTML = "";
  el("error").textContent = "";
  document.getElementById("training").hidden = false;
  let done = false;
  let stream = null;
  async function refresh() {
    const response = await fetch(urls.status_url, { credentials: "same-origin" });
    const status = await response.json();
    el("id").textContent = status.training_id;
    el("stage").textContent = status.messege;
    el("log").textContent = status.data;
    el("progress").value = status.progress;
    if (status.status === "failed") el("error").textContent = status.data;
    drawLoss(el("loss"), status.losses || []);
    const shown = el("samples").querySelectorAll("img").length;
    (status.samples || []).slice(shown).forEach((url, index) => {
      el("samples").appendChild(outputFigure(url, null, shown + index, {}));
    });
    done = status.messege === "model_ready" || status.messege === "failed";
    el("cancel").hidden = done;
    el("cancel").onclick = async () => {
      await fetch(urls.cancel_url, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() } });
      refresh();
    };
    if (status.messege === "model_ready") {
      el("download").href = urls.download_url;
      el("download").hidden = false;
      el("use").hidden = false;
      el("use").onclick = () => {  // the playground, with this LoRA chosen and the instance prompt
        const instance = document.querySelector("#train input[name=instance_prompt]");
        sessionStorage.setItem("playground-params", JSON.stringify({
          operation: "text2img",
          fields: { lora_model: status.lora_model, prompt: (instance && instance.value) || status.training_id },
          inputs: {},
        }));
        window.location.href = document.querySelector("header a[href$='/playground/']").href;
      };
    }
    if (done && stream) stream.close();
    return done;
  }
  refresh().then((finished) => {
    if (finished) return;
    stream = new EventSource(urls.events_url);
    stream.addEventListener("status", () => refresh());
    stream.onerror = () => {  // no stream here, or it broke: poll instead
      stream.close();
      const poll = async () => { if (!(await refresh())) setTimeout(poll, 1000); };
      poll();
    };
  });
}

// The loss by step as a line, scaled to the chart (the policy allows no inline style: attributes only).
function drawLoss(svg, losses) {
  if (!losses.length) return;
  const steps = losses.map((point) => point[0]);
  const values = losses.map((point) => point[1]);
  const [first, last] = [Math.min(...steps), Math.max(...steps)];
  const [low, high] = [Math.min(...values), Math.max(...values)];
  const x = (step) => (last > first ? ((step - first) / (last - first)) * 300 : 0);
  const y = (value) => (high > low ? 100 - ((value - low) / (high - low)) * 100 : 50);
  svg.querySelector("polyline").setAttribute("points", losses.map(([step, value]) => x(step) + "," + y(value)).join(" "));
  svg.dataset.points = String(losses.length);
}

async function submitTraining(event) {
  event.preventDefault();
  const form = event.target;
  const images = await Promise.all(Array.from(form.elements.images.files).map((file) => new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = reject;
    reader.readAsDataURL(file);
  })));
  const body = { images };
  for (const name of ["instance_prompt", "class_prompt", "training_type", "max_train_steps", "seed"]) {
    if (form.elements[name].value !== "") body[name] = form.elements[name].value;
  }
  const response = await fetch(form.dataset.runUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (answer.status === "error") {
    document.getElementById("training").hidden = false;
    const message = answer.message;
    document.getElementById("training-stage").textContent = "error";
    document.getElementById("training-error").textContent =
      typeof message === "string" ? message : Object.values(message).flat().join(" ");
    return;
  }
  followTraining(answer);
}

document.addEventListener("DOMContentLoaded", () => {
  const train = document.getElementById("train");
  if (train) {
    train.addEventListener("submit", submitTraining);
    train.elements.images.addEventListener("change", () => {
      const strip = document.getElementById("train-thumbnails");
      strip.innerHTML = "";
      for (const file of train.elements.images.files) {
        const img = document.createElement("img");
        img.src = URL.createObjectURL(file);
        img.alt = file.name;
        strip.appendChild(img);
      }
    });
    document.querySelectorAll(".follow-training").forEach((node) => node.addEventListener("click", () => {
      followTraining({ status_url: node.dataset.statusUrl, events_url: node.dataset.eventsUrl,
        cancel_url: node.dataset.statusUrl.replace("status.json", "cancel/"),
        download_url: node.dataset.statusUrl.replace("status.json", "lora.safetensors") });
    }));
  }

  // the usage chart's bars: heights set here, since the pages' policy allows no inline style
  document.querySelectorAll(".bar[data-height]").forEach((bar) => { bar.style.height = bar.dataset.height + "%"; });
  const form = document.getElementById("playground");
  if (form) {
    showFieldsFor(form);
    applyFastModel(form);  // before "run again" fills in the job's own values
    const stored = sessionStorage.getItem("playground-params");
    if (stored) {
      sessionStorage.removeItem("playground-params");
      fillFromJob(form, JSON.parse(stored));
    }
    form.elements.operation.addEventListener("change", () => showFieldsFor(form));
    form.querySelectorAll("select[name='model_id'], select[name='lora_model']").forEach((select) => {
      select.addEventListener("change", () => applyFastModel(form));
    });
    form.addEventListener("submit", submitPlayground);
    painter.setup(form);
    for (const name of ["width", "height", "overlap_width"]) {
      form.elements[name].addEventListener("input", () => drawOutpaintPreview(form, painter.image));
    }
  }
  const job = document.getElementById("job");
  if (job && (job.dataset.status === "queued" || job.dataset.status === "running")) {
    followJob({ status: job.dataset.statusUrl, events: job.dataset.eventsUrl }, "job");
  }
  document.querySelectorAll(".copy-seed[data-seed]").forEach((node) => {
    node.addEventListener("click", () => navigator.clipboard.writeText(node.dataset.seed));
  });
  const open = document.getElementById("open-in-playground");
  if (open) {
    open.addEventListener("click", () => {
      sessionStorage.setItem("playground-params", document.getElementById("playground-params").textContent);
    });
  }
});
