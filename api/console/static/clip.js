// One clip: preview, filter decision, every frame beside its image prior and source real clip, full
// provenance, and a checksum check done in the browser.

import { ApiError, api, apiJson, h, requireLogin, showNotice } from "./console.js";

const clipId = document.getElementById("clip-page").dataset.clipId;
const $ = (id) => document.getElementById(id);

function valueNode(value) {
  if (value === null || value === undefined) return h("span", { class: "hint" }, "none");
  if (Array.isArray(value)) return value.some((v) => typeof v === "object" && v !== null) ? h("code", {}, JSON.stringify(value)) : h("code", {}, value.join(", "));
  if (typeof value === "object") return factList(value);
  if (typeof value === "string" && /^[0-9a-f]{64}$/.test(value)) return h("code", {}, value);
  return String(value);
}

function factList(record) {
  return h("dl", { class: "facts" }, ...Object.entries(record).flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, valueNode(value))]));
}

function renderProvenance(provenance) {
  $("provenance").replaceChildren(
    ...Object.entries(provenance).map(([section, value]) =>
      h("section", { class: "provenance-section", "aria-labelledby": `prov-${section}` }, h("h3", { id: `prov-${section}` }, section), valueNode(value)),
    ),
  );
}

function render(clip) {
  $("back-to-job").href = `/console/jobs/${clip.job_id}`;
  const name = `bank ${clip.bank_index}, clip ${clip.index_in_bank}`;
  if (clip.preview_url) {
    const img = $("clip-preview");
    img.src = clip.preview_url;
    img.alt = `Animated preview of ${name}`;
    img.hidden = false;
  }
  const decision = $("clip-decision");
  decision.className = `badge ${clip.kept === null ? "pending" : clip.kept ? "kept" : "dropped"}`;
  decision.textContent = clip.kept === null ? "not filtered yet" : clip.kept ? "kept" : `dropped: ${clip.reason}`;
  $("recorded-sha256").textContent = clip.provenance.clip.sha256;
  $("verify-checksum").disabled = !clip.download_url;
  if (clip.download_url) {
    const link = $("download-clip");
    link.href = clip.download_url;
    link.hidden = false;
  }
  renderProvenance(clip.provenance);
}

const STRIPS = {
  frames: ["every frame of the clip", () => true, ""],
  image_prior: ["the conditioning image prior", (clip) => clip.provenance.conditions.image_prior !== null, "No image prior: this bank left it out."],
  source: [
    "every frame of the source real clip",
    (clip) => clip.provenance.bank.source_clip_id !== null,
    "No source real clip: this bank was not drawn from a dataset's training clips.",
  ],
};

/** Each strip is a PNG the API renders with this tab's key, shown through a blob URL. */
async function loadStrip(clip, kind) {
  const [what, present, absent] = STRIPS[kind];
  const caption = $(`strip-${kind}-caption`);
  if (!present(clip)) {
    caption.textContent = absent;
    caption.classList.add("hint");
    return;
  }
  try {
    const response = await api(`/v1/clips/${clipId}/strips/${kind}`, { headers: { Accept: "image/png" } });
    const img = $(`strip-${kind}`);
    img.src = URL.createObjectURL(await response.blob());
    img.alt = `Strip of ${what}, left to right`;
    img.hidden = false;
    if (kind === "source") caption.textContent = `The source real clip ${clip.provenance.bank.source_clip_id}, every frame.`;
  } catch (error) {
    caption.textContent = `Could not load ${what}: ${error.message}`;
    caption.classList.add("hint");
  }
}

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Fetch a fresh download URL, download the object, hash it with crypto.subtle and compare. */
async function verify() {
  const result = $("verify-result");
  result.className = "";
  if (!globalThis.crypto?.subtle) {
    result.textContent = "This browser offers SHA-256 only on HTTPS or localhost pages: open the console over HTTPS.";
    return;
  }
  result.textContent = "Downloading and hashing…";
  try {
    const clip = await apiJson(`/v1/clips/${clipId}`);
    const response = await fetch(clip.download_url, { credentials: "omit", cache: "no-store" });
    if (!response.ok) throw new Error(`download failed: HTTP ${response.status}`);
    const bytes = await response.arrayBuffer();
    const computed = hex(await crypto.subtle.digest("SHA-256", bytes));
    const recorded = clip.provenance.clip.sha256;
    $("computed-sha256").textContent = computed;
    const match = computed === recorded;
    result.className = match ? "match" : "mismatch";
    result.textContent = match
      ? `Match: the ${bytes.byteLength} bytes downloaded hash to the recorded SHA-256.`
      : `Mismatch: the ${bytes.byteLength} bytes downloaded do not hash to the recorded SHA-256.`;
  } catch (error) {
    result.className = "mismatch";
    result.textContent = `Could not verify: ${error.message}`;
  }
}

if (requireLogin()) {
  $("verify-checksum").addEventListener("click", verify);
  apiJson(`/v1/clips/${clipId}`)
    .then((clip) => {
      render(clip);
      return Promise.all(Object.keys(STRIPS).map((kind) => loadStrip(clip, kind)));
    })
    .catch((error) => {
      const message = error instanceof ApiError && error.status === 404 ? "This clip does not exist in your project." : `Could not load the clip: ${error.message}`;
      showNotice($("clip-notice"), message, true);
    });
}
