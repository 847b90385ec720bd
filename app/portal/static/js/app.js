// Portal SIA: the pages, one per #/ruta. Each action calls the service's own routes: the public e.firma routes
// of /v1 to obtain, renew or cancel a password, and /portal/api (cookie session) for everything after sign-in.
import { ApiError, api, portal, whenSessionLost } from "./api.js";
import { readCertificate, signChallenge, unlockKey } from "./efirma.js";
import { qrSvg } from "./qr.js";
import { busy, diaLegible, diaMexico, estado, fecha, fechaHora, field, h, labelCells, notice, show } from "./ui.js";

let yo = null; // who is signed in (GET /portal/api/sesion), or null

// ------------------------------------------------------------------ shell

function menu() {
  const links = [];
  if (!yo) {
    links.push(["#/contrasena", "Contraseña con e.firma"], ["#/entrar", "Entrar"]);
  } else {
    if (yo.es_patron) links.push(["#/patron", "Mis NRP y relaciones"], ["#/auditoria", "Auditoría"]);
    links.push(["#/desarrollador", "Desarrollador"], ["#/acuses", "Acuses"], ["#/contrasena", "Contraseña con e.firma"]);
  }
  const current = location.hash || "#/";
  document.getElementById("menu").replaceChildren(
    ...links.map(([href, text]) =>
      h("a", {
        href,
        "aria-current": current === href ? "page" : null,
        // The page already shown: a click still means "start this page again" (no hashchange fires).
        onclick: (event) => {
          if (location.hash === href) {
            event.preventDefault();
            notice("");
            route();
          }
        },
      }, text)),
  );
  const who = document.getElementById("quien");
  if (yo) {
    const out = h("button", { type: "button", class: "secundario" }, "Cerrar sesión");
    out.addEventListener("click", busy(out, signOut));
    who.replaceChildren(h("span", {}, `${yo.razon_social || yo.nombre || ""} · ${yo.rfc}`), out);
  } else {
    who.replaceChildren();
  }
}

async function signOut() {
  try {
    await portal.delete("/sesion");
  } finally {
    yo = null;
    notice("Sesión cerrada.", "ok");
    go("#/entrar");
  }
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function failure(error) {
  notice(error instanceof ApiError ? `${error.title ? `${error.title}: ` : ""}${error.message}` : error.message, "error");
}

whenSessionLost(() => {
  yo = null;
  notice("Su sesión terminó (por inactividad, por tiempo o porque su contraseña cambió). Entre de nuevo.", "error");
  go("#/entrar");
});

const PAGES = {
  "#/": inicio,
  "#/contrasena": contrasena,
  "#/entrar": entrar,
  "#/patron": patron,
  "#/auditoria": auditoria,
  "#/desarrollador": desarrollador,
  "#/acuses": misAcuses,
};
const NEEDS_SESSION = new Set(["#/patron", "#/auditoria", "#/desarrollador", "#/acuses"]);

async function route() {
  const hash = location.hash || "#/";
  const page = PAGES[hash] || inicio;
  if (NEEDS_SESSION.has(hash) && !yo) {
    notice("Entre con su RFC, contraseña y código OTP para ver esa página.");
    location.hash = "#/entrar";
    return;
  }
  menu();
  try {
    await page();
  } catch (error) {
    failure(error);
  }
  document.getElementById("contenido").focus({ preventScroll: true });
}

window.addEventListener("hashchange", () => {
  notice("");
  route();
});

async function start() {
  try {
    yo = await api("GET", "/portal/api/sesion");
  } catch {
    yo = null;
  }
  route();
}

// ------------------------------------------------------------------ inicio

function inicio() {
  if (yo) return go(yo.es_patron ? "#/patron" : "#/desarrollador");
  show(
    "Inicio",
    h("h1", {}, "Portal SIA"),
    h(
      "div",
      { class: "rejilla" },
      h(
        "section",
        { class: "tarjeta" },
        h("h2", {}, "1. Su contraseña, con la e.firma"),
        h("p", {}, "Con los archivos .cer y .key de la e.firma del RFC obtiene la contraseña del servicio (llega por " +
          "correo) y el código para su app autenticadora. La llave se usa solo en este navegador."),
        h("a", { class: "boton", href: "#/contrasena" }, "Obtener contraseña"),
      ),
      h(
        "section",
        { class: "tarjeta" },
        h("h2", {}, "2. Entrar"),
        h("p", {}, "Con su RFC, la contraseña del correo y el código de seis dígitos de su app autenticadora."),
        h("a", { class: "boton", href: "#/entrar" }, "Entrar"),
      ),
    ),
  );
}

// ------------------------------------------------------------------ e.firma: obtain, renew, cancel

async function fileBytes(input) {
  const file = input.files?.[0];
  return file ? new Uint8Array(await file.arrayBuffer()) : null;
}

function certificateCard(info) {
  const now = new Date();
  const vigente = info.desde <= now && now < info.hasta;
  return h(
    "section",
    { class: "tarjeta", "aria-label": "Datos del certificado" },
    h("h2", {}, "Datos del certificado"),
    h(
      "dl",
      { class: "datos" },
      h("dt", {}, "RFC"), h("dd", {}, info.rfc || "sin RFC"),
      h("dt", {}, "Nombre"), h("dd", {}, info.nombre || "—"),
      h("dt", {}, "Vigencia"), h("dd", {}, `del ${fecha(info.desde)} al ${fecha(info.hasta)}${vigente ? "" : " (no vigente hoy)"}`),
      h("dt", {}, "Tipo"),
      h("dd", {}, info.esEfirma ? "e.firma (FIEL)" : "No es una e.firma: parece un certificado de sello digital (CSD)"),
    ),
    info.esEfirma && vigente ? null : h("p", { class: "mensaje error" }, "El servicio no aceptará este certificado."),
  );
}

function contrasena() {
  const rfc = field("RFC", { type: "text", name: "rfc", autocomplete: "off", maxlength: 13, required: true },
    "Se llena con el RFC del certificado; es el RFC que obtiene la contraseña.");
  const cer = field("Certificado (.cer)", { type: "file", accept: ".cer,application/pkix-cert", required: true });
  const key = field("Llave privada (.key)", { type: "file", accept: ".key", required: true },
    "El archivo se lee aquí; nunca se envía.");
  const password = field("Contraseña de la llave privada", { type: "password", autocomplete: "off", required: true },
    "La que puso al tramitar la e.firma en el SAT; nunca se envía.");
  const correo = field("Correo electrónico", { type: "email", autocomplete: "email" },
    "Adonde llegará la contraseña. Al renovar puede dejarlo vacío para usar el anterior.");
  const card = h("div", {});
  let certificate = null;

  cer.input.addEventListener("change", async () => {
    certificate = null;
    card.replaceChildren();
    const bytes = await fileBytes(cer.input);
    if (!bytes) return;
    try {
      certificate = readCertificate(bytes);
      if (certificate.rfc) rfc.input.value = certificate.rfc;
      card.replaceChildren(certificateCard(certificate));
    } catch (error) {
      failure(error);
    }
  });

  const obtain = h("button", { type: "submit" }, "Obtener contraseña");
  const renew = h("button", { type: "button", class: "secundario" }, "Renovar contraseña");
  const cancel = h("button", { type: "button", class: "peligro" }, "Cancelar contraseña");
  const result = h("div", {});

  async function prove() {
    notice("");
    if (!certificate) throw new Error("Elija el certificado (.cer) de la e.firma.");
    const keyBytes = await fileBytes(key.input);
    if (!keyBytes) throw new Error("Elija la llave privada (.key) de la e.firma.");
    if (!password.input.value) throw new Error("Escriba la contraseña de la llave privada.");
    const privateKey = unlockKey(keyBytes, password.input.value, certificate);
    const reto = await api("POST", "/v1/efirma/retos", { rfc: rfc.input.value.trim().toUpperCase() });
    const firma = signChallenge(privateKey, reto.reto);
    password.input.value = ""; // typed once, used once
    return { reto_id: reto.reto_id, certificado: certificate.base64, firma };
  }

  async function act(kind) {
    try {
      const proof = await prove();
      if (kind === "cancelar") {
        const done = await api("POST", "/v1/contrasenas/cancelacion", proof);
        notice(`Contraseña de ${done.rfc} cancelada. Acuse ${done.folio_acuse}.`, "ok");
        result.replaceChildren(acuseNote(done.folio_acuse));
        return;
      }
      const email = correo.input.value.trim();
      if (kind === "obtener" && !email) throw new Error("Escriba el correo electrónico adonde llegará la contraseña.");
      const path = kind === "obtener" ? "/v1/contrasenas" : "/v1/contrasenas/renovacion";
      const body = email ? { ...proof, correo: email } : proof;
      const issued = await api("POST", path, body);
      if (kind === "renovar") yo = null; // renewal ends every session of the old password
      menu();
      form.hidden = true; // done: the one-time secret is what matters now
      result.replaceChildren(totpPanel(issued));
      result.querySelector("h2")?.focus();
    } catch (error) {
      failure(error);
    }
  }

  const form = h(
    "form",
    { class: "tarjeta", novalidate: true, "aria-labelledby": "titulo-efirma" },
    rfc.element, cer.element, card, key.element, password.element, correo.element,
    obtain, renew, cancel,
  );
  form.addEventListener("submit", busy(obtain, () => act("obtener")));
  renew.addEventListener("click", busy(renew, () => act("renovar")));
  cancel.addEventListener("click", busy(cancel, () => act("cancelar")));

  show(
    "Contraseña con e.firma",
    h("h1", { id: "titulo-efirma" }, "Contraseña del servicio con su e.firma"),
    h("p", {}, "Elija los archivos de la e.firma (no el sello digital). Antes de enviar nada verá los datos del " +
      "certificado. La llave privada se abre y firma aquí mismo; al servicio solo viajan el certificado y la firma."),
    form,
    result,
  );
}

function acuseNote(folio) {
  return h(
    "p",
    {},
    `Acuse ${folio}: `,
    h("a", { href: "#/acuses" }, "descárguelo en PDF en Acuses"),
    " después de entrar.",
  );
}

function totpPanel(issued) {
  return h(
    "section",
    { class: "tarjeta", "aria-labelledby": "titulo-otp" },
    h("h2", { id: "titulo-otp", tabindex: "-1" }, "Listo: registre su código OTP"),
    h("p", { class: "mensaje ok" }, `La contraseña llega por correo a ${issued.correo_enmascarado}. No se muestra aquí ` +
      "ni se la pedirá nadie por otro medio."),
    h("p", {}, "Escanee este código con su app autenticadora (Google Authenticator, Microsoft Authenticator, FreeOTP…). " +
      "Se muestra solo esta vez."),
    h("div", { class: "qr" }, qrSvg(issued.otp.uri, `Código QR del secreto OTP de ${issued.rfc}`)),
    h("p", {}, "O escriba este secreto en la app: ", h("code", { class: "secreto", id: "secreto-otp" }, issued.otp.secreto)),
    acuseNote(issued.folio_acuse),
    h("a", { class: "boton", href: "#/entrar" }, "Entrar"),
  );
}

// ------------------------------------------------------------------ sign-in

function entrar() {
  if (yo) return go("#/");
  const rfc = field("RFC", { type: "text", autocomplete: "username", maxlength: 13, required: true });
  const password = field("Contraseña", { type: "password", autocomplete: "current-password", required: true },
    "La que llegó por correo.");
  const otp = field("Código OTP", { type: "text", inputmode: "numeric", autocomplete: "one-time-code", maxlength: 6,
    pattern: "[0-9]{6}", required: true }, "Los seis dígitos que muestra ahora su app autenticadora.");
  const submit = h("button", { type: "submit" }, "Entrar");
  const form = h("form", { class: "tarjeta", novalidate: true }, rfc.element, password.element, otp.element, submit);
  form.addEventListener(
    "submit",
    busy(submit, async () => {
      try {
        yo = await api("POST", "/portal/api/sesion", {
          rfc: rfc.input.value.trim().toUpperCase(),
          contrasena: password.input.value,
          otp: otp.input.value.trim(),
        });
        password.input.value = "";
        notice(`Bienvenido, ${yo.razon_social || yo.nombre || yo.rfc}.`, "ok");
        go(yo.es_patron ? "#/patron" : "#/desarrollador");
      } catch (error) {
        otp.input.value = "";
        failure(error);
      }
    }),
  );
  show(
    "Entrar",
    h("h1", {}, "Entrar al portal"),
    form,
    h("p", {}, "¿Aún no tiene contraseña? ", h("a", { href: "#/contrasena" }, "Obténgala con su e.firma"), "."),
  );
}

// ------------------------------------------------------------------ employer: NRPs and relationships

function pdfLink(folio) {
  return h("a", { href: `/portal/api/acuses/${encodeURIComponent(folio)}.pdf`, download: `${folio}.pdf` },
    "Descargar acuse (PDF)");
}

function nrpsText(nrps) {
  return nrps ? nrps.join(", ") : "todos (también los que registre después)";
}

async function patron() {
  const [registro, relaciones] = await Promise.all([portal.get("/patron"), portal.get("/relaciones?rol=patron")]);
  const formArea = h("div", {});
  const nueva = h("button", { type: "button" }, "Nueva relación de confianza");
  nueva.addEventListener("click", () => {
    formArea.replaceChildren(newRelationForm(registro, formArea));
    formArea.querySelector("input")?.focus();
  });
  show(
    "Mis NRP y relaciones",
    h("h1", {}, registro.razon_social),
    h(
      "section",
      { class: "tarjeta", "aria-labelledby": "titulo-nrp" },
      h("h2", { id: "titulo-nrp" }, `Mis registros patronales (${registro.nrps.length})`),
      h("p", {}, `RFC ${registro.rfc}`),
      h("ul", {}, registro.nrps.map((nrp) => h("li", {}, nrp))),
    ),
    h("h2", {}, "Relaciones de confianza"),
    h("p", {}, "Quién puede consultar sus avisos, de qué NRP y hasta cuándo."),
    nueva,
    formArea,
    relationsTable(relaciones, { employer: true }),
  );
}

function relationsTable(relaciones, { employer }) {
  if (!relaciones.length) return h("p", {}, employer ? "Aún no ha otorgado ninguna relación." : "Ningún patrón le ha otorgado una relación.");
  const rows = relaciones.map((r) => {
    const actions = h("td", {});
    if (employer && (r.estado === "vigente" || r.estado === "programada")) {
      const revoke = h("button", { type: "button", class: "peligro", "aria-label": `Revocar la relación con ${r.rfc_desarrollador}` }, "Revocar");
      revoke.addEventListener("click", () => actions.replaceChildren(confirmRevoke(r, actions, revoke)));
      actions.append(revoke);
    }
    return h(
      "tr",
      {},
      h("td", {}, employer ? r.rfc_desarrollador : r.rfc_patron),
      h("td", {}, nrpsText(r.nrps)),
      h("td", {}, `${fechaHora(r.vigencia_inicio)} – ${fechaHora(r.vigencia_fin)}`),
      h("td", {}, estado(r.estado)),
      h("td", {}, pdfLink(r.folio_acuse), r.folio_acuse_revocacion ? h("br") : null,
        r.folio_acuse_revocacion ? h("a", { href: `/portal/api/acuses/${r.folio_acuse_revocacion}.pdf`, download: "" }, "Acuse de revocación (PDF)") : null),
      employer ? actions : null,
    );
  });
  return h(
    "div",
    { class: "tabla" },
    labelCells(h(
      "table",
      {},
      h("caption", {}, employer ? "Relaciones que usted otorgó" : "Relaciones que recibió"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, employer ? "Desarrollador" : "Patrón"), h("th", { scope: "col" }, "NRP"),
        h("th", { scope: "col" }, "Vigencia (hora del centro de México)"), h("th", { scope: "col" }, "Estado"),
        h("th", { scope: "col" }, "Acuse"), employer ? h("th", { scope: "col" }, "Acción") : null)),
      h("tbody", {}, rows),
    )),
  );
}

function confirmRevoke(relacion, cell, original) {
  const yes = h("button", { type: "button", class: "peligro" }, "Sí, revocar");
  const no = h("button", { type: "button", class: "secundario" }, "No");
  no.addEventListener("click", () => cell.replaceChildren(original));
  yes.addEventListener(
    "click",
    busy(yes, async () => {
      try {
        const done = await portal.delete(`/relaciones/${relacion.id}`);
        notice(`Relación con ${done.rfc_desarrollador} revocada. Acuse de revocación ${done.folio_acuse_revocacion}.`, "ok");
        await patron();
      } catch (error) {
        failure(error);
      }
    }),
  );
  queueMicrotask(() => yes.focus());
  return h("div", { role: "group", "aria-label": "Confirmar revocación" },
    h("p", {}, `¿Revocar la relación con ${relacion.rfc_desarrollador}? Dejará de leer sus avisos desde su siguiente consulta.`),
    yes, no);
}

function newRelationForm(registro, area) {
  const today = diaMexico();
  const rfc = field("RFC del desarrollador", { type: "text", maxlength: 13, autocomplete: "off", required: true },
    "El RFC con el que el desarrollador obtuvo su contraseña.");
  const card = h("div", { "aria-live": "polite" });
  const desde = field("Vigente desde", { type: "date", min: today, value: today, required: true },
    "Día en hora del centro de México; hoy significa desde este momento.");
  const hasta = field("Vigente hasta", { type: "date", min: today, required: true },
    "La relación termina al iniciar ese día (00:00, hora del centro de México).");
  const boxes = registro.nrps.map((nrp) => {
    const id = `nrp-${nrp}`;
    const box = h("input", { type: "checkbox", id, value: nrp, checked: true });
    return { box, element: h("label", { class: "casilla", for: id }, box, nrp) };
  });
  const nrps = h("fieldset", {}, h("legend", {}, "NRP que podrá consultar"), boxes.map((b) => b.element));
  const sentence = h("p", { class: "frase", "aria-live": "polite" });
  const create = h("button", { type: "submit" }, "Crear relación");
  const cancel = h("button", { type: "button", class: "secundario" }, "Cancelar");
  cancel.addEventListener("click", () => area.replaceChildren());
  let developer = null;

  async function lookUp() {
    developer = null;
    card.replaceChildren();
    const value = rfc.input.value.trim().toUpperCase();
    if (value.length < 12) return;
    try {
      developer = await portal.get(`/desarrolladores/${encodeURIComponent(value)}`);
      card.replaceChildren(
        h("dl", { class: "datos tarjeta" },
          h("dt", {}, "Desarrollador"), h("dd", {}, developer.nombre || developer.rfc),
          h("dt", {}, "Certificación"),
          h("dd", {}, developer.certificado ? `vigente hasta el ${fecha(developer.certificado_hasta)}` : "no certificado: aún no puede leer avisos")),
      );
    } catch (error) {
      card.replaceChildren(h("p", { class: "mensaje error" }, error.message));
    }
    describe();
  }

  function chosen() {
    return boxes.filter((b) => b.box.checked).map((b) => b.box.value);
  }

  function describe() {
    const list = chosen();
    if (!developer || !hasta.input.value || !list.length) {
      sentence.textContent = "Escriba el RFC del desarrollador, elija los NRP y las fechas para ver lo que autoriza.";
      return;
    }
    const all = list.length === registro.nrps.length;
    sentence.textContent =
      `Usted autoriza a ${developer.nombre || developer.rfc} (${developer.rfc}) a consultar los avisos de ` +
      `${all ? "todos sus NRP" : `sus NRP ${list.join(", ")}`} del ${diaLegible(desde.input.value || today)}` +
      `${desde.input.value === today ? " (desde este momento)" : ""} al ${diaLegible(hasta.input.value)}.`;
  }

  rfc.input.addEventListener("change", lookUp);
  for (const input of [desde.input, hasta.input, ...boxes.map((b) => b.box)]) input.addEventListener("change", describe);
  describe();

  const form = h("form", { class: "tarjeta", novalidate: true, "aria-label": "Nueva relación de confianza" },
    h("h2", {}, "Nueva relación de confianza"), rfc.element, card, nrps, desde.element, hasta.element, sentence,
    create, cancel);
  form.addEventListener(
    "submit",
    busy(create, async () => {
      try {
        if (!developer) await lookUp();
        if (!developer) throw new Error("Escriba el RFC de un desarrollador con contraseña del servicio.");
        const list = chosen();
        if (!list.length) throw new Error("Elija al menos un NRP.");
        if (!hasta.input.value) throw new Error("Elija hasta qué día vale la relación.");
        const body = {
          rfc_desarrollador: developer.rfc,
          // Every NRP ticked means "all", which also covers NRPs registered later; the sentence says so.
          nrps: list.length === registro.nrps.length ? null : list,
          // Naive date-times: the service reads them as Mexico City time. Today means "from now".
          vigencia_inicio: desde.input.value && desde.input.value !== today ? `${desde.input.value}T00:00:00` : null,
          vigencia_fin: `${hasta.input.value}T00:00:00`,
        };
        const created = await portal.post("/relaciones", body);
        notice(`Relación creada con ${created.rfc_desarrollador}. Acuse ${created.folio_acuse}.`, "ok");
        await patron();
      } catch (error) {
        failure(error);
      }
    }),
  );
  return form;
}

// ------------------------------------------------------------------ employer: audit

const ACCIONES = {
  "avisos.consulta": "Consulta de avisos",
  "avisos.rechazada": "Consulta rechazada",
  "avisos.consulta_rechazada": "Consulta rechazada",
  "relacion.creada": "Relación creada",
  "relacion.revocada": "Relación revocada",
};

async function auditoria() {
  const desde = field("Desde", { type: "date" });
  const hasta = field("Hasta", { type: "date" }, "Incluye todo ese día (hora del centro de México).");
  const quien = field("RFC del desarrollador", { type: "text", maxlength: 13, autocomplete: "off" }, "Vacío: todos.");
  const apply = h("button", { type: "submit" }, "Filtrar");
  const results = h("div", {});
  const form = h("form", { class: "tarjeta", "aria-label": "Filtros de la auditoría" },
    h("div", { class: "rejilla" }, desde.element, hasta.element, quien.element), apply);

  async function load() {
    const query = new URLSearchParams();
    if (desde.input.value) query.set("desde", `${desde.input.value}T00:00:00`);
    if (hasta.input.value) {
      const next = new Date(`${hasta.input.value}T12:00:00Z`);
      next.setUTCDate(next.getUTCDate() + 1);
      query.set("hasta", `${next.toISOString().slice(0, 10)}T00:00:00`);
    }
    if (quien.input.value.trim()) query.set("desarrollador", quien.input.value.trim().toUpperCase());
    const page = await portal.get(`/auditoria?${query}`);
    results.replaceChildren(readsChart(page.eventos), auditTable(page.eventos, page.hay_mas));
  }

  form.addEventListener("submit", busy(apply, async () => {
    try {
      await load();
    } catch (error) {
      failure(error);
    }
  }));
  show("Auditoría", h("h1", {}, "Auditoría: quién consultó sus avisos"), form, results);
  await load();
}

function outcome(evento) {
  if (evento.accion.startsWith("avisos.") && evento.accion !== "avisos.consulta") return "Rechazada";
  if (evento.accion !== "avisos.consulta") return "—";
  return evento.detalle?.completo === false ? "Cortada" : "Completa";
}

function auditTable(eventos, more) {
  if (!eventos.length) return h("p", {}, "No hay eventos con esos filtros.");
  return h(
    "div",
    { class: "tabla" },
    labelCells(h(
      "table",
      {},
      h("caption", {}, `Eventos, del más reciente al más antiguo${more ? " (se muestran los 500 más recientes)" : ""}`),
      h("thead", {}, h("tr", {}, ["Cuándo", "Quién", "Acción", "Avisos", "NRP", "Resultado"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, eventos.map((e) => h("tr", {},
        h("td", {}, fechaHora(e.ocurrido_en)),
        h("td", {}, e.actor || "—"),
        h("td", {}, ACCIONES[e.accion] || e.accion),
        h("td", {}, e.cantidad ?? "—"),
        h("td", {}, e.nrps ? e.nrps.join(", ") : "todos"),
        h("td", {}, outcome(e)),
      ))),
    )),
  );
}

function readsChart(eventos) {
  const perDay = new Map();
  for (const e of eventos) {
    if (e.accion !== "avisos.consulta") continue;
    const day = diaMexico(e.ocurrido_en);
    perDay.set(day, (perDay.get(day) || 0) + 1);
  }
  const days = [...perDay.keys()].sort().slice(-30);
  if (!days.length) return h("p", {}, "Sin consultas de avisos en este periodo.");
  const SVG = "http://www.w3.org/2000/svg";
  const max = Math.max(...days.map((d) => perDay.get(d)));
  const width = 400, height = 100, bar = Math.min(width / days.length, 40);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 14}`);
  svg.setAttribute("role", "img");
  const summary = days.map((d) => `${diaLegible(d)}: ${perDay.get(d)}`).join("; ");
  svg.setAttribute("aria-label", `Consultas por día: ${summary}`);
  days.forEach((d, i) => {
    const value = perDay.get(d);
    const rect = document.createElementNS(SVG, "rect");
    const barHeight = Math.max(2, (value / max) * (height - 14));
    rect.setAttribute("x", i * bar + bar * 0.15);
    rect.setAttribute("width", bar * 0.7);
    rect.setAttribute("y", height - barHeight);
    rect.setAttribute("height", barHeight);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", i * bar + bar / 2);
    label.setAttribute("y", height - barHeight - 3);
    label.setAttribute("text-anchor", "middle");
    label.textContent = value;
    const day = document.createElementNS(SVG, "text");
    day.setAttribute("x", i * bar + bar / 2);
    day.setAttribute("y", height + 12);
    day.setAttribute("text-anchor", "middle");
    day.textContent = d.slice(5);
    svg.append(rect, label, day);
  });
  return h("figure", { class: "tarjeta grafica" }, h("figcaption", {}, "Consultas de avisos por día"), svg);
}

// ------------------------------------------------------------------ developer: certification, relationships received

async function desarrollador() {
  const [intentos, recibidas] = await Promise.all([portal.get("/certificaciones"), portal.get("/relaciones?rol=desarrollador")]);
  const open = h("button", { type: "button" }, "Abrir intento de certificación");
  open.addEventListener("click", busy(open, async () => {
    try {
      const intento = await portal.post("/certificaciones");
      notice(`Intento abierto; su patrón de pruebas es ${intento.sandbox?.rfc_patron}.`, "ok");
      await desarrollador();
    } catch (error) {
      failure(error);
    }
  }));
  show(
    "Desarrollador",
    h("h1", {}, "Desarrollador"),
    h("p", {}, yo.certificado_hasta ? `Certificación vigente hasta el ${fecha(yo.certificado_hasta)}.` : "Aún no tiene una certificación vigente: sin ella no puede leer avisos de producción."),
    h("h2", {}, "Intentos de certificación"),
    h("p", {}, "Su sistema de nómina descarga los avisos de prueba del sandbox y envía la evidencia por la API; aquí ve el veredicto de cada escenario."),
    open,
    intentos.length ? intentos.map(attemptCard) : h("p", {}, "No ha abierto ningún intento."),
    h("h2", {}, "Relaciones que recibió"),
    relationsTable(recibidas, { employer: false }),
  );
}

function attemptCard(intento) {
  const actions = [];
  if (intento.estado === "en_curso" || intento.estado === "aprobada") {
    const cancel = h("button", { type: "button", class: "peligro" }, intento.estado === "aprobada" ? "Cancelar certificación" : "Cancelar intento");
    cancel.addEventListener("click", busy(cancel, async () => {
      try {
        await portal.delete(`/certificaciones/${intento.id}`);
        notice("Cancelado.", "ok");
        await desarrollador();
      } catch (error) {
        failure(error);
      }
    }));
    actions.push(cancel);
  }
  return h(
    "section",
    { class: "tarjeta", "aria-label": `Intento del ${fechaHora(intento.creada_en)}` },
    h("h3", {}, `Intento del ${fechaHora(intento.creada_en)} `, estado(intento.estado)),
    h("dl", { class: "datos" },
      intento.sandbox ? [h("dt", {}, "Patrón de pruebas"), h("dd", {}, `${intento.sandbox.rfc_patron} · NRP ${intento.sandbox.nrps.join(", ")}`)] : null,
      intento.expira_en ? [h("dt", {}, "Expira"), h("dd", {}, fechaHora(intento.expira_en))] : null,
      intento.vigente_hasta ? [h("dt", {}, "Certificado hasta"), h("dd", {}, fechaHora(intento.vigente_hasta))] : null,
      intento.folio_acuse ? [h("dt", {}, "Acuse"), h("dd", {}, pdfLink(intento.folio_acuse))] : null),
    h("div", { class: "tabla" }, labelCells(h("table", {},
      h("caption", {}, "Escenarios"),
      h("thead", {}, h("tr", {}, ["Escenario", "Qué pide", "Veredicto", "Motivo"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, intento.escenarios.map((e) => h("tr", {},
        h("td", {}, e.nombre), h("td", {}, e.descripcion), h("td", {}, estado(e.estado)), h("td", {}, e.motivo || "—"))))))),
    actions,
  );
}

// ------------------------------------------------------------------ acuses

async function misAcuses() {
  const lista = await portal.get("/acuses");
  const TIPOS = {
    "contrasena.emision": "Emisión de contraseña", "contrasena.renovacion": "Renovación de contraseña",
    "contrasena.cancelacion": "Cancelación de contraseña", "relacion.creacion": "Relación de confianza",
    "relacion.revocacion": "Revocación de relación", "certificacion.aprobacion": "Certificación aprobada",
  };
  show(
    "Acuses",
    h("h1", {}, "Mis acuses"),
    lista.length
      ? h("div", { class: "tabla" }, labelCells(h("table", {},
          h("caption", {}, "Acuses en los que usted es parte, del más reciente al más antiguo"),
          h("thead", {}, h("tr", {}, ["Fecha", "Tipo", "Folio", "PDF"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, lista.map((a) => h("tr", {},
            h("td", {}, fechaHora(a.emitido_en)), h("td", {}, TIPOS[a.tipo] || a.tipo), h("td", {}, a.folio),
            h("td", {}, pdfLink(a.folio))))))))
      : h("p", {}, "Aún no tiene acuses."),
  );
}

start();
