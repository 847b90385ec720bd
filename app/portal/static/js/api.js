// The portal's only way to the service: same-origin fetch. The session is an HttpOnly cookie the page cannot read;
// no bearer token ever reaches this page.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `Error ${status}`);
    this.status = status;
    this.code = problem?.code;
    this.title = problem?.title;
  }
}

let onSessionLost = () => {};
export function whenSessionLost(handler) {
  onSessionLost = handler;
}

export async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(0, { detail: "No se pudo conectar con el servicio. Revise su conexión y reintente." });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (error.code === "sesion_requerida" && path !== "/portal/api/sesion") onSessionLost(error);
    throw error;
  }
  return data;
}

export const portal = {
  get: (path) => api("GET", `/portal/api${path}`),
  post: (path, body) => api("POST", `/portal/api${path}`, body ?? {}),
  delete: (path) => api("DELETE", `/portal/api${path}`),
};
