// Errors shown next to the fields they belong to. A field is a `.field[data-loc]` (or a fieldset/bank with
// data-loc); the API's error `loc` (["body", "sampler", "steps"]) names it as the dotted path "sampler.steps".

import { h } from "./console.js";

const LOCATIONS = new Set(["body", "query", "path", "header"]);

export function locPath(loc) {
  const parts = loc.length && LOCATIONS.has(loc[0]) ? loc.slice(1) : loc;
  return parts.map(String).join(".");
}

/** The element whose data-loc is the longest prefix of `path` (a bank's field before the bank itself). */
export function fieldForPath(root, path) {
  let best = null;
  for (const element of root.querySelectorAll("[data-loc]")) {
    const loc = element.dataset.loc;
    if ((path === loc || path.startsWith(`${loc}.`)) && (!best || loc.length > best.dataset.loc.length)) {
      best = element;
    }
  }
  return best;
}

function errorSlot(field) {
  return field.querySelector(":scope > .field-error, :scope > fieldset > .field-error");
}

function control(field) {
  return field.matches("input, select, textarea") ? field : field.querySelector("input, select, textarea");
}

export function fieldLabel(field) {
  const label = field.querySelector(":scope > label") ?? field.querySelector("legend");
  const bank = field.closest(".bank");
  const name = label ? label.textContent.trim() : field.dataset.loc;
  if (bank && bank !== field) return `Bank ${bank.querySelector(".bank-number").textContent}: ${name}`;
  return name;
}

export function clearErrors(root) {
  for (const field of root.querySelectorAll(".has-error")) field.classList.remove("has-error");
  for (const slot of root.querySelectorAll(".field-error")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const input of root.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    const ids = (input.getAttribute("aria-describedby") ?? "").split(" ").filter((id) => !id.endsWith("-error"));
    if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
    else input.removeAttribute("aria-describedby");
  }
}

/** Put `message` in the field's error slot and mark its control invalid; returns the control (or field). */
export function showFieldError(field, message) {
  const slot = errorSlot(field);
  field.classList.add("has-error");
  if (slot) {
    slot.textContent = slot.hidden ? message : `${slot.textContent} ${message}`;
    slot.hidden = false;
  }
  const input = field.classList.contains("field") ? control(field) : null;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    const ids = new Set((input.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean));
    if (slot) ids.add(slot.id);
    input.setAttribute("aria-describedby", [...ids].join(" "));
  }
  return input ?? field;
}

/** Show each API error next to its field; returns [{text, target}] for the error summary. */
export function showApiErrors(root, detail) {
  const lines = [];
  for (const item of detail) {
    const field = fieldForPath(root, locPath(item.loc ?? []));
    if (field) {
      const target = showFieldError(field, item.msg);
      lines.push({ text: `${fieldLabel(field)}: ${item.msg}`, target });
    } else {
      const where = locPath(item.loc ?? []);
      lines.push({ text: where ? `${where}: ${item.msg}` : item.msg, target: null });
    }
  }
  return lines;
}

/** The summary box at the top of a form: each line links to (and focuses) its field. */
export function showSummary(summary, lines) {
  const list = summary.querySelector("ul");
  list.replaceChildren(
    ...lines.map(({ text, target }) => {
      if (!target) return h("li", {}, text);
      if (!target.id) target.id = `field-${Math.random().toString(36).slice(2)}`;
      const link = h("a", { href: `#${target.id}` }, text);
      link.addEventListener("click", (event) => {
        event.preventDefault();
        target.focus();
      });
      return h("li", {}, link);
    }),
  );
  summary.hidden = lines.length === 0;
  if (lines.length) summary.focus();
}
