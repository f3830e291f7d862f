// Log in: check the key against the REST API, then keep it in this tab's sessionStorage.

import { ApiError, api, saveKey } from "./console.js";
import { clearErrors, showFieldError } from "./forms.js";

const form = document.getElementById("login-form");
const input = document.getElementById("api-key");
const field = form.querySelector('[data-loc="key"]');

/** Only a console path of this site: the `next` parameter must not send the user elsewhere. */
function nextPage() {
  const next = new URLSearchParams(location.search).get("next") ?? "";
  return /^\/console\/[A-Za-z0-9/_-]*(\?[A-Za-z0-9=&_-]*)?$/.test(next) && !next.startsWith("/console/login")
    ? next
    : "/console/jobs";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const key = input.value.trim();
  if (!key) {
    showFieldError(field, "Enter your API key.");
    input.focus();
    return;
  }
  try {
    await api("/v1/jobs?limit=1", { key, loginOn401: false });
  } catch (error) {
    const message = error instanceof ApiError ? error.message : `The API did not answer: ${error.message}`;
    showFieldError(field, message);
    input.focus();
    return;
  }
  saveKey(key);
  location.assign(nextPage());
});
input.focus();
