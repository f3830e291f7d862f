// One job: status and progress (refreshed every second until it finishes), the filter's per-check counts,
// the VAE-Seq histogram with its band, the clip previews, cancel and the database download.

import {
  ApiError, FINISHED, api, apiJson, formatScore, formatTime, h, jobProgress, poll, requireLogin, showNotice, statusBadge,
} from "./console.js";
import { drawHistogram } from "./histogram.js";

const jobId = document.getElementById("job-page").dataset.jobId;
const $ = (id) => document.getElementById(id);
const notice = $("job-notice");
const CHECKS = [
  ["Memorised: closer than the threshold to a real training clip (before Algorithm 1)", "memorised"],
  ["Semantic misalignment: loss above the bank's mean (× α)", "semantic"],
  ["Inner-sequence: inconsistent, VAE-Seq below tₗ", "inconsistent"],
  ["Inner-sequence: near-static, VAE-Seq above tₕ", "static"],
  ["Inter-sequence: duplicate of a kept clip (Θ ≥ threshold)", "duplicate"],
  ["Off manifold: too few frames on the real k-NN manifold of its class (after Algorithm 1)", "off_manifold"],
];
const CLIPS_PAGE = 500;
const CLIPS_REFRESH_MS = 5000;
const cards = new Map();
let lastStatus = "";
let lastClipsDone = 0;
let clipsLoadedAt = 0;

function renderStatus(job) {
  $("job-status").replaceWith(Object.assign(statusBadge(job.status), { id: "job-status" }));
  $("job-model").replaceChildren(
    h("a", { href: `/console/models/${encodeURIComponent(`${job.model}:${job.model_version}`)}` }, `${job.model} ${job.model_version}`),
  );
  $("job-seed").textContent = String(job.seed);
  const sampler = job.sampler;
  $("job-sampler").textContent =
    `${sampler.name}, ${sampler.steps} steps, guidance ${sampler.guidance_scale}, eta ${sampler.eta}`;
  $("job-created").textContent = formatTime(job.created_at);
  $("job-finished").textContent = formatTime(job.finished_at);
  const { fraction, text } = jobProgress(job);
  $("job-progress").value = fraction;
  $("job-progress-text").textContent = text;
  $("job-error").hidden = !job.error;
  $("job-error").textContent = job.error ? `Error: ${job.error}` : "";
  $("cancel-job").disabled = FINISHED.has(job.status) || job.cancel_requested;
  $("cancel-job").textContent = job.cancel_requested && !FINISHED.has(job.status) ? "Cancel requested" : "Cancel job";
  $("download-database").disabled = !job.database_ready;
}

function filterRan(job) {
  return job.results.band !== null || ["exporting", "succeeded"].includes(job.status);
}

function renderFilterTable(job) {
  const body = document.querySelector("#filter-table tbody");
  if (!filterRan(job)) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 4 }, "The filter has not run yet.")));
    return;
  }
  const dropped = job.results.dropped_counts;
  let remaining = job.results.clips_kept + Object.values(dropped).reduce((a, b) => a + b, 0);
  const rows = [h("tr", {}, h("th", { scope: "row" }, "Clips sampled"), h("td", {}, "—"), h("td", { class: "number" }, "—"), h("td", { class: "number" }, String(remaining)))];
  for (const [label, reason] of CHECKS) {
    const count = dropped[reason] ?? 0;
    remaining -= count;
    rows.push(
      h(
        "tr",
        { "data-reason": reason },
        h("th", { scope: "row" }, label),
        h("td", {}, h("code", {}, reason)),
        h("td", { class: "number" }, String(count)),
        h("td", { class: "number" }, String(remaining)),
      ),
    );
  }
  body.replaceChildren(...rows);
}

// Quality figure key -> row label (worker/job_quality.py CLIP_FIGURES), in the order the table shows them.
const QUALITY_FIGURES = [
  ["clips", "Clips"],
  ["coherence_generated", "Coherence, generated"],
  ["coherence_real", "Coherence, real training clips"],
  ["coherence_ratio", "Coherence ratio (generated / real)"],
  ["precision", "Precision (k-NN manifold)"],
  ["recall", "Recall (k-NN manifold)"],
  ["coverage", "Coverage (k-NN manifold)"],
  ["memorised_share", "Memorised share"],
  ["nearest_training_distance", "Distance to the nearest training clip"],
];

function qualityCell(value) {
  if (value === null || value === undefined) return h("td", { class: "number hint" }, "—");
  return h("td", { class: "number" }, Number.isInteger(value) ? String(value) : value.toPrecision(3));
}

function renderQuality(job) {
  const quality = job.results.quality;
  const table = $("job-quality-table");
  table.hidden = !quality;
  if (!quality) {
    $("job-quality-summary").textContent = `Quality figures: ${job.results.quality_reason}.`;
    return;
  }
  const kept = quality.kept;
  const columns = [
    ...Object.entries(kept.per_class).map(([name, figures]) => [`${name}, kept`, figures]),
    ["overall, kept", kept.overall],
    ["overall, all clips", quality.all.overall],
  ];
  table.querySelector("thead tr").replaceChildren(
    h("th", { scope: "col" }, "Figure"),
    ...columns.map(([name]) => h("th", { scope: "col", class: "number" }, name)),
  );
  table.querySelector("tbody").replaceChildren(
    ...QUALITY_FIGURES.map(([key, label]) =>
      h("tr", { "data-figure": key }, h("th", { scope: "row" }, label), ...columns.map(([, figures]) => qualityCell(figures[key]))),
    ),
  );
  const data = quality.data;
  $("job-quality-summary").textContent =
    `Against dataset ${data.dataset} (${data.training_clips} training clips, manifest ${data.manifest_sha256.slice(0, 12)}…). ` +
    `${quality.definitions.feature_space}. Memorisation: ${quality.definitions.memorisation_distance}.`;
}

/** The job's clips in bank order: every page, or only the first while the job is still generating. */
async function loadClips(everyPage) {
  const clips = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: String(CLIPS_PAGE) });
    if (cursor) query.set("cursor", cursor);
    const page = await apiJson(`/v1/jobs/${jobId}/clips?${query}`);
    clips.push(...page.items);
    cursor = everyPage ? page.next_cursor : null;
  } while (cursor);
  return clips;
}

function decisionBadge(clip) {
  if (clip.kept === null) return h("span", { class: "badge pending" }, "not filtered yet");
  if (clip.kept) return h("span", { class: "badge kept" }, "kept");
  return h("span", { class: "badge dropped" }, `dropped: ${clip.reason}`);
}

function clipCard(clip) {
  const name = `Bank ${clip.bank_index} · clip ${clip.index_in_bank}`;
  const preview = clip.preview_url
    ? h("img", { src: clip.preview_url, alt: `Animated preview of ${name}`, loading: "lazy", width: 128, height: 128 })
    : h("p", { class: "hint" }, "No preview");
  return h(
    "li",
    { class: "clip-card", "data-clip-id": clip.id },
    h("a", { href: `/console/clips/${clip.id}` }, preview, h("span", { class: "clip-title" }, name)),
    h("div", { class: "clip-meta" }),
  );
}

function renderClips(clips) {
  const grid = $("clip-grid");
  clips.forEach((clip, position) => {
    let card = cards.get(clip.id);
    if (!card) {
      card = clipCard(clip);
      cards.set(clip.id, card);
    }
    if (grid.children[position] !== card) grid.insertBefore(card, grid.children[position] ?? null);
    card.classList.toggle("is-kept", clip.kept === true);
    card.classList.toggle("is-dropped", clip.kept === false);
    card.dataset.kept = String(clip.kept);
    card
      .querySelector(".clip-meta")
      .replaceChildren(decisionBadge(clip), h("span", {}, `VAE-Seq ${formatScore(clip.vae_seq)}`));
  });
  const kept = clips.filter((clip) => clip.kept === true).length;
  const dropped = clips.filter((clip) => clip.kept === false).length;
  $("clips-status").textContent = clips.length
    ? `${clips.length} clips: ${kept} kept, ${dropped} dropped.`
    : "No clips yet.";
}

async function refreshClips(job) {
  const clips = await loadClips(FINISHED.has(job.status) || job.results.band !== null);
  renderClips(clips);
  const scores = clips.map((clip) => clip.vae_seq).filter((value) => value !== null);
  drawHistogram($("histogram"), scores, job.results.band);
}

function render(job) {
  renderStatus(job);
  renderFilterTable(job);
  renderQuality(job);
}

async function step() {
  const job = await apiJson(`/v1/jobs/${jobId}`);
  render(job);
  // Clips are listed again when the status changes, and at most every few seconds while new ones arrive.
  const newClips = job.progress.clips_done !== lastClipsDone && Date.now() - clipsLoadedAt > CLIPS_REFRESH_MS;
  if (job.status !== lastStatus || newClips) {
    lastStatus = job.status;
    lastClipsDone = job.progress.clips_done;
    clipsLoadedAt = Date.now();
    await refreshClips(job);
  }
  return FINISHED.has(job.status);
}

async function cancel() {
  try {
    render(await apiJson(`/v1/jobs/${jobId}/cancel`, { method: "POST" }));
    showNotice(notice, "Cancel requested: the worker stops between denoising steps.");
  } catch (error) {
    showNotice(notice, `Could not cancel: ${error.message}`, true);
  }
}

function saveAs(href, filename) {
  const link = h("a", { href, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

/** A time-limited link when the store gives one (S3, signed local URL), else the API streams the ZIP. */
async function downloadDatabase() {
  const filename = `ctrlgenaug-${jobId}.zip`;
  try {
    const response = await api(`/v1/jobs/${jobId}/database?presigned=1`);
    if ((response.headers.get("Content-Type") ?? "").startsWith("application/json")) {
      const link = await response.json();
      $("database-info").textContent =
        `Database: ${link.size_bytes} bytes, SHA-256 ${link.sha256}; the link expires in ${link.expires_in} s.`;
      saveAs(link.url, filename);
    } else {
      const url = URL.createObjectURL(await response.blob());
      $("database-info").textContent = `Database: SHA-256 ${response.headers.get("X-Content-SHA256") ?? "unknown"}.`;
      saveAs(url, filename);
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    }
  } catch (error) {
    showNotice(notice, `Could not download the database: ${error instanceof ApiError ? error.message : error}`, true);
  }
}

if (requireLogin()) {
  $("cancel-job").addEventListener("click", cancel);
  $("download-database").addEventListener("click", downloadDatabase);
  poll(async () => {
    try {
      return await step();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        showNotice(notice, "This job does not exist in your project.", true);
        return true;
      }
      throw error;
    }
  }, 1000);
}
