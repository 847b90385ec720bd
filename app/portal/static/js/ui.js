// DOM helpers: every text goes in as a text node (never as HTML), so data from the service cannot inject markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let fieldCounter = 0;

// A labelled field: the label names the control (what screen readers and scripts look it up by).
export function field(labelText, attributes = {}, help = null) {
  const id = attributes.id || `campo-${++fieldCounter}`;
  const helpId = help ? `${id}-ayuda` : null;
  const input = h("input", { id, "aria-describedby": helpId, ...attributes });
  return {
    input,
    element: h("div", {}, h("label", { for: id }, labelText), input, help ? h("p", { class: "ayuda", id: helpId }, help) : null),
  };
}

export function show(view, ...children) {
  const target = document.getElementById("vista");
  target.replaceChildren(...children.flat().filter(Boolean));
  if (view) document.title = `${view} — Portal SIA`;
}

export function notice(text, kind = "info") {
  const region = document.getElementById("aviso");
  region.replaceChildren(text ? h("div", { class: `mensaje ${kind}` }, text) : "");
}

const MEXICO = "America/Mexico_City";
const dateTime = new Intl.DateTimeFormat("es-MX", { timeZone: MEXICO, dateStyle: "medium", timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat("es-MX", { timeZone: MEXICO, dateStyle: "long" });
const isoDay = new Intl.DateTimeFormat("en-CA", { timeZone: MEXICO, year: "numeric", month: "2-digit", day: "2-digit" });

export const fechaHora = (value) => (value ? dateTime.format(new Date(value)) : "—");
export const fecha = (value) => (value ? dateOnly.format(new Date(value)) : "—");
// YYYY-MM-DD of an instant, in Mexico City (the day a person there reads on the calendar).
export const diaMexico = (value = new Date()) => isoDay.format(new Date(value));
// A calendar day chosen in Mexico City, for the words of a sentence.
export const diaLegible = (yyyyMmDd) => dateOnly.format(new Date(`${yyyyMmDd}T12:00:00-06:00`));

export function estado(value) {
  const labels = {
    vigente: "Vigente", programada: "Programada", vencida: "Vencida", revocada: "Revocada",
    en_curso: "En curso", aprobada: "Aprobada", cancelada: "Cancelada",
    pendiente: "Pendiente", aprobado: "Aprobado", reprobado: "Reprobado",
  };
  return h("span", { class: `estado estado-${value}` }, labels[value] || value);
}

export function busy(button, work) {
  return async (event) => {
    event?.preventDefault?.();
    button.disabled = true;
    try {
      await work(event);
    } finally {
      button.disabled = false;
    }
  };
}

// Each cell carries its column's name, so a phone can show rows as cards (CSS) and the header stays for readers.
export function labelCells(table) {
  const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
  table.classList.add("apilada");
  for (const row of table.querySelectorAll("tbody tr")) {
    [...row.children].forEach((cell, i) => cell.setAttribute("data-etiqueta", names[i] || ""));
  }
  return table;
}
