// Submit a job: model, condition banks (uploads go to POST /v1/assets first) or banks from a registered
// dataset, sampler, seed and filter settings; the API's 422 errors are shown next to the fields their `loc` names.

import { ApiError, apiJson, h, requireLogin } from "./console.js";
import { clearErrors, fieldForPath, showApiErrors, showFieldError, showSummary } from "./forms.js";

const form = document.getElementById("submit-form");
const modelSelect = document.getElementById("model");
const bankList = document.getElementById("bank-list");
const template = document.getElementById("bank-template");
const summary = document.getElementById("error-summary");
const statusLine = document.getElementById("submit-status");
const submitButton = document.getElementById("submit-job");
const banksFieldset = document.getElementById("banks");
const banksFromFieldset = document.getElementById("banks-from");
const datasetSelect = document.getElementById("banks_from-dataset");
const classChecks = document.getElementById("banks_from-classes");
const INDEXED = ["id", "for", "aria-describedby", "data-loc"];
const uploaded = new WeakMap(); // File -> asset id (the API is content-addressed; this saves re-uploads)
let models = [];
let datasets = [];

function randomHex(bytes) {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}
const idempotencyKey = `console-${randomHex(16)}`;

function currentModel() {
  return models.find((model) => `${model.name}:${model.version}` === modelSelect.value);
}

/** Give a bank row its index in ids, labels and data-loc (banks-0-text, banks.0.text) and its number. */
function indexBank(row, index) {
  for (const element of [row, ...row.querySelectorAll("*")]) {
    for (const name of INDEXED) {
      const value = element.getAttribute(name);
      if (value) element.setAttribute(name, value.replace(/banks([-.])(__i__|\d+)/g, `banks$1${index}`));
    }
  }
  for (const number of row.querySelectorAll(".bank-number")) number.textContent = String(index + 1);
}

function renumberBanks() {
  const rows = [...bankList.children];
  rows.forEach(indexBank);
  for (const button of bankList.querySelectorAll(".remove-bank")) button.disabled = rows.length === 1;
}

/** Class choices and which conditions the chosen model takes. */
function fitBankToModel(row) {
  const model = currentModel();
  const select = row.querySelector('[data-condition="class_label"] select');
  const chosen = select.value;
  select.replaceChildren(
    h("option", { value: "" }, "(none: class dropped)"),
    ...(model?.class_names ?? []).map((name) => h("option", { value: name, selected: name === chosen }, name)),
  );
  for (const field of row.querySelectorAll("[data-condition]")) {
    const takes = !model || model.conditions.includes(field.dataset.condition);
    field.querySelector("input, select, textarea").disabled = !takes;
    field.title = takes ? "" : `Model ${model.name} does not take this condition`;
  }
}

function addBank() {
  const row = template.content.firstElementChild.cloneNode(true);
  row.querySelector(".remove-bank").addEventListener("click", () => removeBank(row));
  for (const input of row.querySelectorAll('input[type="file"]')) {
    input.addEventListener("change", () => {
      input.closest(".field").querySelector(".upload-status").textContent = "";
    });
  }
  bankList.append(row);
  renumberBanks();
  fitBankToModel(row);
  return row;
}

function removeBank(row) {
  const next = row.nextElementSibling ?? row.previousElementSibling;
  row.remove();
  renumberBanks();
  updateEstimate();
  (next?.querySelector("select, input") ?? document.getElementById("add-bank")).focus();
}

function readNumber(input, path, problems) {
  const raw = input.value.trim();
  if (input.validity.badInput) {
    problems.push({ loc: ["body", ...path.split(".")], msg: "Enter a number.", type: "console" });
    return undefined;
  }
  if (!raw) return undefined;
  const value = Number(raw);
  // Integers beyond 2^53 travel as text so no digit is lost; the API parses and bounds them.
  if (input.dataset.kind === "integer" && Number.isInteger(value) && !Number.isSafeInteger(value)) return raw;
  return value;
}

function numbersOf(container, prefix, problems) {
  const values = {};
  for (const input of container.querySelectorAll('input[type="number"]')) {
    const path = input.closest(".field").dataset.loc;
    if (!path.startsWith(prefix)) continue;
    const value = readNumber(input, path, problems);
    if (value !== undefined) values[path.slice(prefix.length)] = value;
  }
  return values;
}

// On/off selects left at "default" are left out: the API decides (on when the model's data build is registered).
function switchesOf(container, prefix) {
  const values = {};
  for (const select of container.querySelectorAll("select[data-switch]")) {
    const path = select.closest(".field").dataset.loc;
    if (path.startsWith(prefix) && select.value) values[path.slice(prefix.length)] = select.value === "true";
  }
  return values;
}

async function uploadAsset(input) {
  const file = input.files[0];
  if (!file) return null;
  if (uploaded.has(file)) return uploaded.get(file);
  const status = input.closest(".field").querySelector(".upload-status");
  status.textContent = `Uploading ${file.name}…`;
  const body = new FormData();
  body.append("kind", input.dataset.kind);
  body.append("file", file);
  const asset = await apiJson("/v1/assets", { method: "POST", body });
  uploaded.set(file, asset.id);
  status.textContent = `Uploaded: SHA-256 ${asset.sha256.slice(0, 16)}…, shape ${asset.shape.join("×")}.`;
  return asset.id;
}

/** Upload each bank's files; an upload's own errors go next to its file field. */
async function bankBodies(problems) {
  const banks = [];
  for (const row of bankList.children) {
    const prefix = `${row.dataset.loc}.`;
    const bank = numbersOf(row, prefix, problems);
    const classLabel = row.querySelector('[data-condition="class_label"] select');
    const text = row.querySelector('[data-condition="text"] textarea');
    if (!classLabel.disabled && classLabel.value) bank.class_label = classLabel.value;
    if (!text.disabled && text.value.trim()) bank.text = text.value.trim();
    for (const [input, key] of [
      [row.querySelector('[data-kind="image_prior"]'), "image_prior_asset"],
      [row.querySelector('[data-kind="reference_clip"]'), "motion_asset"],
    ]) {
      if (input.disabled) continue;
      try {
        const id = await uploadAsset(input);
        if (id) bank[key] = id;
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        input.closest(".field").querySelector(".upload-status").textContent = "";
        for (const item of error.detail) problems.push({ ...item, loc: ["body", ...`${prefix}${key}`.split(".")] });
      }
    }
    banks.push(bank);
  }
  return banks;
}

function fromDataset() {
  return form.querySelector('input[name="bank-source"]:checked').value === "banks_from";
}

function showBankSource() {
  const chosen = fromDataset();
  banksFieldset.hidden = banksFieldset.disabled = chosen;
  banksFromFieldset.hidden = banksFromFieldset.disabled = !chosen;
  updateEstimate();
}

function currentDataset() {
  return datasets.find((dataset) => dataset.name === datasetSelect.value);
}

function showDatasetClasses() {
  classChecks.replaceChildren(
    ...(currentDataset()?.class_names ?? []).map((name) =>
      h("label", {}, h("input", { type: "checkbox", value: name }), ` ${name}`),
    ),
  );
}

/** The `banks_from` body: a dataset, samples per bank, and max_banks, classes, balancing when given. */
function banksFromBody(problems) {
  const body = { dataset: datasetSelect.value, ...numbersOf(banksFromFieldset, "banks_from.", problems) };
  const classes = [...classChecks.querySelectorAll("input:checked")].map((box) => box.value);
  if (classes.length) body.classes = classes;
  if (document.getElementById("banks_from-balance_to_majority").checked) body.balance_to_majority = true;
  return body;
}

function report(problems) {
  showSummary(summary, showApiErrors(form, problems));
  statusLine.textContent = "";
}

async function submit(event) {
  event.preventDefault();
  clearErrors(form);
  summary.hidden = true;
  submitButton.disabled = true;
  statusLine.textContent = "Submitting…";
  try {
    const problems = [];
    const body = { model: modelSelect.value };
    if (fromDataset()) body.banks_from = banksFromBody(problems);
    else body.banks = await bankBodies(problems);
    const sampler = numbersOf(form, "sampler.", problems);
    sampler.name = document.getElementById("sampler-name").value;
    body.sampler = sampler;
    const seed = readNumber(document.getElementById("seed"), "seed", problems);
    if (seed !== undefined) body.seed = seed;
    body.filter = {
      ...numbersOf(form, "filter.", problems),
      scope: document.getElementById("filter-scope").value,
      manifold_features: document.getElementById("filter-manifold_features").value,
      ...switchesOf(form, "filter."),
    };
    if (problems.length) {
      report(problems);
      return;
    }
    statusLine.textContent = "Submitting the job…";
    const job = await apiJson("/v1/jobs", { method: "POST", json: body, headers: { "Idempotency-Key": idempotencyKey } });
    statusLine.textContent = "Job submitted.";
    location.assign(`/console/jobs/${job.id}`);
  } catch (error) {
    report(error instanceof ApiError ? error.detail : [{ loc: [], msg: `The API did not answer: ${error.message}` }]);
  } finally {
    submitButton.disabled = false;
  }
}

function updateEstimate() {
  const estimate = document.getElementById("estimate");
  const clips = fromDataset() ? datasetClips() : [...bankList.querySelectorAll('[data-loc$=".samples"] input')].reduce(
    (total, input) => total + (Number.parseInt(input.value, 10) || 0),
    0,
  );
  const steps = Number.parseInt(document.getElementById("sampler-steps").value, 10) || 0;
  const seconds = clips * steps * Number(estimate.dataset.secondsPerClipStep);
  const time = seconds < 90 ? `${Math.max(1, Math.round(seconds))} s` : `${Math.round(seconds / 60)} min`;
  const upTo = fromDataset() ? "up to " : "";
  estimate.textContent = `Estimate: ${upTo}${clips} clips × ${steps} steps ≈ ${upTo}${time} of sampling on one H200 GPU (measured; a CPU is about a hundred times slower).`;
}

/** At most one bank per training clip (fewer with max_banks), each with its samples; the 202 answer gives the plan. */
function datasetClips() {
  const number = (id) => Number.parseInt(document.getElementById(id).value, 10) || 0;
  const trainingClips = currentDataset()?.training_clips ?? 0;
  const maxBanks = number("banks_from-max_banks");
  return (maxBanks ? Math.min(maxBanks, trainingClips) : trainingClips) * number("banks_from-samples_per_bank");
}

async function loadModels() {
  models = await apiJson("/v1/models");
  modelSelect.replaceChildren(
    ...models.map((model) =>
      h("option", { value: `${model.name}:${model.version}` }, `${model.name} ${model.version} (${model.num_frames} frames, ${model.height}×${model.width})`),
    ),
  );
  if (!models.length) {
    showFieldError(fieldForPath(form, "model"), "No model is registered: register one with `ctrlgenaug models register`.");
    submitButton.disabled = true;
  }
  for (const row of bankList.children) fitBankToModel(row);
}

async function loadDatasets() {
  datasets = await apiJson("/v1/datasets");
  datasetSelect.replaceChildren(
    ...datasets.map((dataset) =>
      h("option", { value: dataset.name }, `${dataset.name} (${dataset.training_clips} training clips; ${dataset.class_names.join(", ")})`),
    ),
  );
  if (!datasets.length) {
    showFieldError(fieldForPath(form, "banks_from.dataset"), "No dataset is registered in this project: register one with POST /v1/datasets.");
  }
  showDatasetClasses();
  updateEstimate();
}

if (requireLogin()) {
  document.getElementById("add-bank").addEventListener("click", () => addBank().querySelector("select").focus());
  modelSelect.addEventListener("change", () => {
    for (const row of bankList.children) fitBankToModel(row);
  });
  for (const radio of form.querySelectorAll('input[name="bank-source"]')) radio.addEventListener("change", showBankSource);
  datasetSelect.addEventListener("change", showDatasetClasses);
  form.addEventListener("submit", submit);
  form.addEventListener("input", updateEstimate);
  document.getElementById("add-bank").addEventListener("click", updateEstimate);
  addBank();
  updateEstimate();
  loadModels().catch((error) => report([{ loc: [], msg: `Could not list the models: ${error.message}` }]));
  loadDatasets().catch((error) => report([{ loc: [], msg: `Could not list the datasets: ${error.message}` }]));
}
