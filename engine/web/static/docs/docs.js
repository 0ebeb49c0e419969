/* The API docs page: Swagger UI over the caller's own OpenAPI document, with a sign-in form
   (session cookie + CSRF token) and an API-token field. Loaded as a file: the page allows
   no inline script (Content-Security-Policy). */
(function () {
  "use strict";
  const root = document.getElementById("docs");
  const config = root.dataset;
  const state = { csrf: config.csrfToken || null, user: config.userName || null, token: null, ui: null };
  const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
  const el = (id) => document.getElementById(id);
  const publicSpec = JSON.parse(el("public-spec").textContent);

  function headersFor(method) {
    const headers = {};
    if (state.token) headers.Authorization = "Bearer " + state.token;
    else if (state.csrf && !SAFE.has(method.toUpperCase())) headers[config.csrfHeader] = state.csrf;
    return headers;
  }

  async function problemText(response) {
    try {
      const body = await response.json();
      return body.detail || body.title || response.statusText;
    } catch (ignored) {
      return response.status + " " + response.statusText;
    }
  }

  function showError(text) {
    const box = el("docs-error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function showStatus() {
    const signedIn = Boolean(state.token || state.user);
    el("docs-status").textContent = state.token ? "Using an API token."
      : state.user ? "Signed in as " + state.user + "." : "Not signed in.";
    el("docs-signin").hidden = signedIn;
    el("docs-token").hidden = signedIn;
    el("docs-signed-in").hidden = !signedIn;
    el("docs-signout").textContent = state.token ? "Forget the token" : "Sign out";
  }

  async function loadSpec() {
    const response = await fetch(config.specUrl, { credentials: "same-origin", headers: headersFor("GET") });
    if (response.ok) return { spec: await response.json(), full: true };
    const detail = await problemText(response);
    if (response.status !== 401) throw new Error("The API description could not be loaded: " + detail);
    if (state.token) showError("The token was not accepted: " + detail);
    state.token = null;
    state.user = null;
    state.csrf = null;
    return { spec: publicSpec, full: false };
  }

  function requestInterceptor(request) {
    request.credentials = "same-origin";
    Object.assign(request.headers, headersFor(request.method || "GET"));
    return request;
  }

  function responseInterceptor(response) {
    if (response.status === 401 && !state.token && state.user) {  // signed out elsewhere, or expired
      Object.assign(state, { csrf: null, user: null });
      showStatus();
      showError("Your session has ended: sign in again.");
    }
    return response;
  }

  async function refresh() {
    let loaded;
    try {
      loaded = await loadSpec();
    } catch (error) {
      showError(error.message);
      loaded = { spec: publicSpec, full: false };
    }
    showStatus();
    el("docs-notice").hidden = loaded.full;
    el("swagger").textContent = "";
    state.ui = window.SwaggerUIBundle({
      spec: loaded.spec, domNode: el("swagger"), deepLinking: true, validatorUrl: null,
      presets: [window.SwaggerUIBundle.presets.apis], layout: "BaseLayout", docExpansion: "list",
      filter: true, displayRequestDuration: true, persistAuthorization: false, requestInterceptor, responseInterceptor,
    });
  }

  el("docs-signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    showError("");
    const response = await fetch(config.loginUrl, {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: form.email.value, password: form.password.value }),
    });
    if (!response.ok) {
      showError("Not signed in: " + await problemText(response));
      return;
    }
    const body = await response.json();
    form.password.value = "";
    Object.assign(state, { csrf: body.csrf_token, user: body.user.name, token: null });
    await refresh();
  });

  el("docs-token").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    state.token = event.target.token.value.trim();
    event.target.token.value = "";
    await refresh();
  });

  el("docs-signout").addEventListener("click", async () => {
    showError("");
    if (!state.token && state.csrf) {
      const response = await fetch(config.logoutUrl, { method: "POST", credentials: "same-origin",
                                                       headers: headersFor("POST") });
      if (!response.ok && response.status !== 401) {
        showError("Not signed out: " + await problemText(response));
        return;
      }
    }
    Object.assign(state, { csrf: null, user: null, token: null });
    await refresh();
  });

  refresh();
})();
