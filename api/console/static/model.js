// One model: its card and the quality figures measured against a real data build.

import { ApiError, apiJson, h, requireLogin, showNotice } from "./console.js";

const reference = document.getElementById("model-page").dataset.model;
const $ = (id) => document.getElementById(id);

// Figure key -> row label, in the order the table shows them.
const FIGURES = [
  ["vae_psnr_db", "VAE reconstruction PSNR (dB), test clips"],
  ["vae_ssim", "VAE reconstruction SSIM, test clips"],
  ["coherence_generated", "Coherence, generated"],
  ["coherence_real", "Coherence, real"],
  ["coherence_ratio", "Coherence ratio (generated / real)"],
  ["vae_seq_generated", "VAE-Seq, generated"],
  ["vae_seq_real", "VAE-Seq, real"],
  ["precision", "Precision (k-NN manifold)"],
  ["recall", "Recall (k-NN manifold)"],
  ["coverage", "Coverage (k-NN manifold)"],
  ["accuracy", "Real-data classifier accuracy, generated"],
  ["real_test_accuracy", "Real-data classifier accuracy, real test"],
  ["prior_ssim", "Image-prior SSIM (first frame)"],
  ["motion_epe", "Motion end-point error (px)"],
  ["motion_epe_without_motion", "Motion end-point error, motion dropped"],
  ["motion_cosine", "Motion cosine"],
  ["motion_cosine_without_motion", "Motion cosine, motion dropped"],
  ["memorised_share", "Memorised share"],
  ["generated_clips", "Generated clips"],
  ["fvd", "FVD"],
];

function cell(value) {
  if (value === null || value === undefined) return h("td", { class: "number hint" }, "—");
  return h("td", { class: "number" }, Number.isInteger(value) ? String(value) : value.toPrecision(3));
}

function renderQuality(quality) {
  if (!quality) {
    $("quality-summary").textContent =
      "Not evaluated: run `ctrlgenaug evaluate synthesis --model DIR --data DATA_BUILD --write-card`, then register the model.";
    return;
  }
  const classes = Object.keys(quality.per_class);
  const columns = [...classes.map((name) => [name, quality.per_class[name]]), ["overall", quality.overall]];
  $("quality-table").querySelector("thead tr").replaceChildren(
    h("th", { scope: "col" }, "Figure"),
    ...columns.map(([name]) => h("th", { scope: "col", class: "number" }, name)),
  );
  $("quality-table").querySelector("tbody").replaceChildren(
    ...FIGURES.filter(([key]) => columns.some(([, figures]) => key in figures)).map(([key, label]) =>
      h("tr", { "data-figure": key }, h("th", { scope: "row" }, label), ...columns.map(([, figures]) => cell(figures[key]))),
    ),
  );
  $("quality-table").hidden = false;
  const sampler = quality.settings ?? {};
  $("quality-summary").textContent =
    `Measured ${quality.measured_at ?? ""} on data build ${quality.data?.manifest_sha256?.slice(0, 12) ?? "?"}… ` +
    `(${quality.data?.train_clips ?? "?"} training / ${quality.data?.test_clips ?? "?"} test clips); ` +
    `${sampler.sampler ?? "?"} ${sampler.steps ?? "?"} steps, guidance ${sampler.guidance_scale ?? "?"}, ` +
    `${sampler.banks_per_class ?? "?"} banks × ${sampler.clips_per_bank ?? "?"} clips per class.`;
  $("quality-definitions").replaceChildren(
    ...Object.entries(quality.definitions ?? {}).flatMap(([name, text]) => [h("dt", {}, name), h("dd", {}, text)]),
  );
}

function render(model) {
  $("model-name").textContent = model.name;
  $("model-version").textContent = model.version;
  $("model-checksum").textContent = model.checksum;
  $("model-classes").textContent = model.class_names.join(", ");
  $("model-shape").textContent = `${model.num_frames} frames of ${model.height}×${model.width}`;
  $("model-conditions").textContent = model.conditions.join(", ");
  renderQuality(model.quality);
}

async function load() {
  try {
    render(await apiJson(`/v1/models/${encodeURIComponent(reference)}`));
  } catch (error) {
    const missing = error instanceof ApiError && error.status === 404;
    showNotice($("model-notice"), missing ? "No such model." : `Could not load the model: ${error.message}`, true);
  }
}

if (requireLogin()) load();
