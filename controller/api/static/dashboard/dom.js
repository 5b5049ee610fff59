// Small DOM helpers shared by the panels.

/** h("td", {class: "num"}, "1.2") — an element with attributes (on* are listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector) => document.querySelector(selector);

/** Replace a container's children. */
export function fill(container, ...children) {
  container.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

export function fmt(value, digits = 2) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(digits);
  return String(value);
}

export function clock(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "—";
}

/** A one-line description of a plan item (the recipe's route and dwell for make_sample). */
export function describeItem(item) {
  const kw = (item && item.kwargs) || {};
  if (item && item.name === "make_sample" && kw.recipe) {
    const r = kw.recipe;
    return `${kw.sample_id || ""} ${r.route} ${fmt(r.dwell_temperature_c, 0)} °C × ${fmt(r.dwell_time_h, 1)} h`;
  }
  if (item && item.name === "hold") return `${fmt(kw.duration_s, 1)} s`;
  return "";
}
