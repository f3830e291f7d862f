// The jobs list, refreshed every second: status and a progress bar per job.

import { FINISHED, apiJson, formatTime, h, jobProgress, poll, requireLogin, shortId, statusBadge } from "./console.js";

const PAGE = 50;
const MAX_LIMIT = 500;
const body = document.querySelector("#jobs-table tbody");
const statusLine = document.getElementById("jobs-status");
const more = document.getElementById("more-jobs");
const rows = new Map();
let limit = PAGE;

function newRow(job) {
  const label = `Job ${shortId(job.id)}`;
  const bar = h("progress", { max: 1, value: 0, "aria-label": `Progress of ${label}` });
  const text = h("span", { class: "progress-text" });
  const row = h(
    "tr",
    { "data-job-id": job.id },
    h("th", { scope: "row" }, h("a", { href: `/console/jobs/${job.id}` }, h("code", {}, shortId(job.id)))),
    h("td", {}, `${job.model} ${job.model_version}`),
    h("td", { class: "status" }),
    h("td", {}, h("div", { class: "progress-cell" }, bar, text)),
    h("td", {}, formatTime(job.created_at)),
  );
  return { row, bar, text, status: row.querySelector(".status") };
}

function update(entry, job) {
  const { fraction, text } = jobProgress(job);
  entry.bar.value = fraction;
  entry.text.textContent = text;
  if (entry.status.textContent !== job.status) entry.status.replaceChildren(statusBadge(job.status));
}

/** Update rows in place (focus and scroll stay put); add new jobs in the API's order. */
function render(page) {
  const seen = new Set();
  page.items.forEach((job, position) => {
    seen.add(job.id);
    let entry = rows.get(job.id);
    if (!entry) {
      entry = newRow(job);
      rows.set(job.id, entry);
    }
    if (body.children[position] !== entry.row) body.insertBefore(entry.row, body.children[position] ?? null);
    update(entry, job);
  });
  for (const [id, entry] of rows) {
    if (!seen.has(id)) {
      entry.row.remove();
      rows.delete(id);
    }
  }
  const running = page.items.filter((job) => !FINISHED.has(job.status)).length;
  const shown = page.items.length;
  statusLine.textContent = shown ? `${shown} ${shown === 1 ? "job" : "jobs"} shown, ${running} running.` : "No jobs yet: submit one.";
  more.hidden = !page.next_cursor || limit >= MAX_LIMIT;
}

if (requireLogin()) {
  more.addEventListener("click", () => {
    limit = Math.min(limit + PAGE, MAX_LIMIT);
  });
  poll(async () => {
    render(await apiJson(`/v1/jobs?limit=${limit}`));
    return false;
  }, 1000);
}
