// Shared by the console's pages: the API key of this tab, REST calls with it, and DOM helpers that only
// ever insert text (never HTML), so data from the API cannot inject markup.

const KEY_NAME = "ctrlgenaug.apiKey";
export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

export function apiKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function saveKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
}

export function goToLogin() {
  const next = location.pathname + location.search;
  location.assign(`/console/login?next=${encodeURIComponent(next)}`);
}

/** The errors of a failed REST call, in the API's `{"detail": [{loc, msg, type}]}` shape. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail.map((item) => item.msg).join("; ") || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

async function errorDetail(response) {
  try {
    const data = await response.json();
    if (Array.isArray(data.detail)) return data.detail;
    return [{ loc: [], msg: String(data.detail ?? response.statusText), type: "http" }];
  } catch {
    return [{ loc: [], msg: `HTTP ${response.status} ${response.statusText}`, type: "http" }];
  }
}

/** fetch() with the tab's key as `Authorization: Bearer`; throws ApiError unless 2xx. A 401 on a logged-in
 * page sends the user to the login page. */
export async function api(path, { method = "GET", json, body, headers = {}, key = apiKey(), loginOn401 = true } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "omit" };
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(path, init);
  if (response.ok) return response;
  if (response.status === 401 && loginOn401) {
    forgetKey();
    goToLogin();
  }
  throw new ApiError(response.status, await errorDetail(response));
}

export async function apiJson(path, options) {
  return (await api(path, options)).json();
}

/** Every page but the login page: go to the login page without a key; wire the log-out button. */
export function requireLogin() {
  if (!apiKey()) {
    goToLogin();
    return false;
  }
  document.getElementById("logout")?.addEventListener("click", () => {
    forgetKey();
    location.assign("/console/login");
  });
  return true;
}

function appendChildren(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function setAttributes(element, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  return element;
}

/** An HTML element with attributes and text/element children. */
export function h(tag, attrs = {}, ...children) {
  return appendChildren(setAttributes(document.createElement(tag), attrs), children);
}

/** An SVG element with attributes and children. */
export function s(tag, attrs = {}, ...children) {
  return appendChildren(setAttributes(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs), children);
}

export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function formatScore(value, digits = 4) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

export function shortId(id) {
  return id.slice(0, 8);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

/** Runs `step` now and then every `intervalMs` after it finishes, while the tab is visible, until it
 * returns true. */
export function poll(step, intervalMs) {
  let timer = null;
  async function tick() {
    let done = false;
    if (document.visibilityState === "visible") {
      try {
        done = await step();
      } catch (error) {
        console.error(error);
      }
    }
    if (!done) timer = setTimeout(tick, intervalMs);
  }
  tick();
  return () => clearTimeout(timer);
}

export function showNotice(element, message, isError = false) {
  element.textContent = message;
  element.classList.toggle("notice-error", isError);
  element.hidden = !message;
}

/** Progress of a job as the fraction of its clips generated, and a line of text saying where it is. */
export function jobProgress(job) {
  const p = job.progress;
  const total = Math.max(p.clips_total, 1);
  const fraction = job.status === "succeeded" ? 1 : Math.min(p.clips_done / total, 1);
  let text = `${p.clips_done} / ${p.clips_total} clips`;
  if (p.phase === "sampling") {
    text += ` · sampling batch ${p.batch} / ${p.batches} · denoising step ${p.denoise_step} / ${p.denoise_steps}`;
    text += ` · about ${formatDuration(p.eta_seconds)} left`;
  } else if (p.phase) {
    text += ` · ${p.phase.replaceAll("_", " ")}`;
  }
  return { fraction, text };
}

/** Seconds as "45 s", "12 min" or "2 h 5 min". */
export function formatDuration(seconds) {
  const s = Math.round(seconds);
  if (s < 90) return `${s} s`;
  const minutes = Math.round(s / 60);
  if (minutes < 90) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
